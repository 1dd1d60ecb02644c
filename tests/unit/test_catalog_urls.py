"""deployflow.catalog.urls: every URL a service is reached at, and the catalog's delegations to it."""

from __future__ import annotations

import pytest

from deployflow.catalog import Service, parse_service
from deployflow.catalog.urls import docker_url, in_cluster_url, service_url
from deployflow.errors import ConfigError
from deployflow.kubernetes.manifests import Manifests
from deployflow.platforms.base import Clients
from deployflow.platforms.factory import site_for

PROXY = "http://127.0.0.1:8001/api/v1/namespaces/{namespace}/services/{name}:80/proxy/"


def service(environment: dict) -> Service:
    return parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"staging": environment}})


@pytest.mark.parametrize(("environment", "expected"), [
    ({"port": 18102}, "http://127.0.0.1:18102"),
    ({"platform": "kubernetes"}, "http://shop.staging.svc.cluster.local"),
    ({"platform": "kubernetes", "kubernetes": {"namespace": "shop-staging"}}, "http://shop.shop-staging.svc.cluster.local"),
    ({"platform": "kubernetes", "kubernetes": {"url": PROXY}},
     "http://127.0.0.1:8001/api/v1/namespaces/staging/services/shop:80/proxy"),
    ({"platform": "kubernetes", "kubernetes": {"front_url": "https://shop.example.com/"}}, "https://shop.example.com"),
    ({"platform": "kubernetes", "kubernetes": {"url": PROXY, "front_url": "http://gateway.example.com:8080"}},
     "http://gateway.example.com:8080"),
], ids=["docker", "kubernetes-default", "kubernetes-namespace", "kubernetes-url", "kubernetes-front-url", "front-url-wins"])
def test_front_url(environment, expected):
    assert site_for(service(environment), "staging", clients=Clients()).front_url() == expected


@pytest.mark.parametrize(("template", "name", "namespace", "expected"), [
    ("http://{name}.{namespace}.svc.cluster.local", "shop-preview", "prod", "http://shop-preview.prod.svc.cluster.local"),
    ("https://{name}.example.com/", "shop-canary", "prod", "https://shop-canary.example.com"),
    (PROXY, "shop", "shop-prod", "http://127.0.0.1:8001/api/v1/namespaces/shop-prod/services/shop:80/proxy"),
])
def test_service_url_fills_name_and_namespace(template, name, namespace, expected):
    assert service_url(template, name, namespace) == expected
    k8s = service({"platform": "kubernetes", "kubernetes": {"namespace": namespace, "url": template}}).environments["staging"].kubernetes
    assert k8s.service_url(name) == expected


@pytest.mark.parametrize(("url", "service_name", "expected"), [
    (None, "shop", "http://shop.shop-prod.svc.cluster.local"),
    (None, "shop-baseline", "http://shop-baseline.shop-prod.svc.cluster.local"),
    (PROXY, "shop-canary", "http://shop-canary.shop-prod.svc.cluster.local"),  # the deployer pod ignores the catalog's url
])
def test_in_cluster_url_is_cluster_dns(url, service_name, expected):
    kubernetes = {"namespace": "shop-prod", **({"url": url} if url else {})}
    shop = service({"platform": "kubernetes", "kubernetes": kubernetes})
    assert in_cluster_url(service_name, "shop-prod") == expected
    assert Manifests(shop, shop.environments["staging"]).in_cluster_url(service_name) == expected


@pytest.mark.parametrize(("port", "expected"), [(18101, "http://127.0.0.1:18101"), (20000, "http://127.0.0.1:20000")])
def test_docker_url_is_loopback(port, expected):
    assert docker_url(port) == expected


def kubernetes(**block) -> dict:
    return {"platform": "kubernetes", "kubernetes": block}


@pytest.mark.parametrize(("field", "template", "says"), [
    ("url", "http://{name.__class__}.example.com", "{name.__class__}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{name[0]}.{namespace}", "{name[0]}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{name:>99999}", "{name:>99999}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{name!r}.svc", "{name!r}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{name}.{zone}", "{zone}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{}.{name}", "{}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{0}.{name}", "{0}; the only placeholders are {name} and {namespace}"),
    ("url", "http://{name", "expected '}' before end of string"),
    ("url", "http://{name}}", "Single '}' encountered in format string"),
    ("url", "http://example.com", "must be an http(s) URL containing {name}"),
    ("url", "ftp://{name}.example.com", "must be an http(s) URL containing {name}"),
    ("url", "http:///{name}", "must be an http(s) URL containing {name}"),
    ("url", "http://{name}.example.com/\nx", "must be an http(s) URL containing {name}"),
    ("url", 42, "must be an http(s) URL containing {name}"),
    ("front_url", "https://{name.__init__.__globals__}", "{name.__init__.__globals__}; the only placeholders are"),
    ("front_url", "https://shop.example.com:{namespace:08}", "{namespace:08}; the only placeholders are"),
    ("front_url", "javascript:alert(1)", "must be an http(s) URL"),
    ("front_url", "shop.example.com", "must be an http(s) URL"),
    ("front_url", "https://shop example.com", "must be an http(s) URL"),
])
def test_a_url_template_is_refused_unless_its_fields_are_bare_name_and_namespace(field, template, says):
    with pytest.raises(ConfigError) as caught:
        service(kubernetes(**{field: template}))
    assert caught.value.path == f"environments.staging.kubernetes.{field}"
    assert caught.value.message.startswith(f"{template!r} is not valid") and says in caught.value.message


def test_the_front_url_takes_the_same_placeholders():
    shop = service(kubernetes(namespace="shop-staging", front_url="https://{name}.{namespace}.example.com/"))
    assert site_for(shop, "staging", clients=Clients()).front_url() == "https://shop.shop-staging.example.com"
