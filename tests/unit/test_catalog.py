from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from deployflow.catalog import DEFAULT_STRATEGY, load_catalog, load_service, parse_service
from deployflow.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]

GOOD = {
    "name": "shop",
    "source": {"repo": "https://git.example.invalid/shop.git"},
    "environments": {"dev": {"port": 18101}, "staging": {"port": 18102}, "prod": {"replicas": 3, "port": 18103}},
}


def test_shipped_catalog_loads():
    services = load_catalog(ROOT / "include" / "services")
    app = services["sample-app"]
    assert app.tests.suites == ("unit", "integration", "performance")
    assert app.tests.coverage_threshold == 80
    assert {e: app.environments[e].strategy for e in app.environments} == DEFAULT_STRATEGY
    assert app.nightly is not None and app.nightly.cron == "0 2 * * *"
    # The demo's prod has no traffic: its file says so, and promotes on health and instances alone.
    assert app.environments["prod"].post_promotion.no_data == "pass"


def test_defaults_fill_a_minimal_entry():
    service = parse_service(GOOD)
    assert [service.environments[e].strategy for e in ("dev", "staging", "prod")] == ["rolling", "canary", "blue-green"]
    assert service.environments["prod"].replicas == 3
    assert service.environments["dev"].health.paths() == ("/health", "/ready", "/live")
    assert service.environments["dev"].platform == "docker"
    assert service.tests.coverage_threshold == 80
    assert service.build.dockerfile == "Dockerfile"
    assert service.nightly is None


def test_the_watch_after_promotion_is_on_in_prod_and_off_elsewhere_unless_asked():
    service = parse_service(GOOD)
    watch = {name: env.post_promotion for name, env in service.environments.items()}
    assert {name: w.enabled for name, w in watch.items()} == {"dev": False, "staging": False, "prod": True}
    assert (watch["prod"].duration_s, watch["prod"].interval_s, watch["prod"].lookback_s) == (120, 30, 3600)
    assert (watch["prod"].no_data, watch["prod"].max_error_rate) == ("hold", None)  # silence never promotes
    asked = parse_service(with_change("environments.staging.post_promotion", {"enabled": True, "duration_s": 20, "max_error_rate": 0.02}))
    assert (asked.environments["staging"].post_promotion.enabled, asked.environments["staging"].post_promotion.interval_s) == (True, 20)
    assert parse_service(with_change("environments.prod.post_promotion", {"enabled": False})).environments["prod"].post_promotion.enabled is False


def with_change(path: str, value):
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "error_path", "says"),
    [
        ("name", "Shop_App", "name", "lower-case"),
        ("name", DELETE, "name", "is required"),
        ("colour", "blue", "colour", "valid fields are name"),
        ("source", DELETE, "source", "is required"),
        ("source.repo", 42, "source.repo", "must be a string"),
        ("source.context", "../other", "source.context", "relative path inside"),
        # Paths the build sends to Docker stay inside as written (the build checks symlinks: test_build.py).
        ("source.context", "/srv/other", "source.context", "must be a relative path inside the repository, without '..'"),
        ("source.context", "app/../../other", "source.context", "must be a relative path inside the repository"),
        ("source.context", "app\n", "source.context", "contains U+000A"),
        ("build.dockerfile", "../../etc/shadow", "build.dockerfile", "must be a relative path inside the build context, without '..'"),
        ("build.dockerfile", "/etc/shadow", "build.dockerfile", "must be a relative path inside the build context"),
        ("build.dockerfile", "docker/../../x", "build.dockerfile", "must be a relative path inside the build context"),
        ("build.dockerfile", "Docker\x00file", "build.dockerfile", "contains U+0000"),
        ("build.dockerfile", "Dockerfile\n", "build.dockerfile", "contains U+000A"),
        ("build.dockerfile", "", "build.dockerfile", "must be a relative path inside the build context"),
        ("source.default_ref", "-x", "source.default_ref", "branch, tag or commit"),
        ("build.args", ["A=1"], "build.args", "mapping of build-arg names"),
        ("build.timeout_s", 0, "build.timeout_s", "from 10 to 7200"),
        ("tests.suites", ["unit", "smoke"], "tests.suites[1]", "'unit', 'integration', 'performance'"),
        ("tests.suites", [], "tests.suites", "non-empty list"),
        ("tests.suites", ["unit", "unit"], "tests.suites", "twice"),
        ("tests.coverage_threshold", 101, "tests.coverage_threshold", "from 0 to 100"),
        ("tests.coverage_threshold", "high", "tests.coverage_threshold", "whole number"),
        ("environments", DELETE, "environments", "is required"),
        ("environments.qa", {}, "environments.qa", "valid fields are dev, staging, prod"),
        ("environments.prod.port", DELETE, "environments.prod.port", "required on the docker platform"),
        ("environments.prod.port", 18101, "environments.prod.port", "already the port of dev"),
        ("environments.prod.canary", {"steps": [50, 25, 100]}, "environments.prod.canary.steps", "rising percentages"),
        ("environments.prod.canary", {"steps": [10, 50]}, "environments.prod.canary.steps", "ending at 100"),
        ("environments.prod.blue_green", {"scale_down_delay_s": -1}, "environments.prod.blue_green.scale_down_delay_s", "from 0 to 3600"),
        ("environments.prod.rolling", {"batch": 1}, "environments.prod.rolling.batch", "valid fields are batch_size"),
        ("environments.prod.health", {"interval_s": 0}, "environments.prod.health.interval_s", "from 0.1 to 60"),
        ("environments.prod.strategy", "bluegreen", "environments.prod.strategy", "'rolling', 'canary', 'blue-green'"),
        ("environments.prod.platform", "nomad", "environments.prod.platform", "'docker', 'kubernetes'"),
        ("environments.prod.replicas", 0, "environments.prod.replicas", "from 1 to 50"),
        ("environments.prod.replicas", True, "environments.prod.replicas", "whole number"),
        ("environments.prod.health", {"ready": "ready"}, "environments.prod.health.ready", "starting with '/'"),
        # Every pattern matches the whole value: '$' alone would let a trailing newline through (into haproxy.cfg).
        ("environments.prod.health", {"ready": "/ready\n"}, "environments.prod.health.ready", "starting with '/'"),
        ("environments.prod.health", {"live": "/live\nhttp-request deny"}, "environments.prod.health.live", "starting with '/'"),
        ("name", "shop\n", "name", "lower-case"),
        ("source.default_ref", "main\n", "source.default_ref", "contains U+000A"),
        ("nightly", {"cron": "0 2 * * *", "ref": "main\n"}, "nightly.ref", "contains U+000A"),
        ("environments.dev", "rolling", "environments.dev", "must be a mapping"),
        ("nightly", {"cron": "every night"}, "nightly.cron", "not a valid cron"),
        ("nightly", {"cron": "0 2 * * *", "environment": "qa"}, "nightly.environment", "'dev', 'staging', 'prod'"),
        ("port", 80, "port", "from 1024 to 65535"),
        ("environments.prod.post_promotion", {"duration_s": 0}, "environments.prod.post_promotion.duration_s", "from 1 to 86400"),
        ("environments.prod.post_promotion", {"duration_s": 20, "interval_s": 30},
         "environments.prod.post_promotion.interval_s", "longer than duration_s (20)"),
        ("environments.prod.post_promotion", {"no_data": "extend"}, "environments.prod.post_promotion.no_data",
         "'extend' is not valid; valid values are 'fail', 'pass', 'hold'"),
        ("environments.prod.post_promotion", {"no_data": "skip"}, "environments.prod.post_promotion.no_data", "'fail', 'pass', 'hold'"),
        ("environments.staging.analysis", {"no_data": "hold"}, "environments.staging.analysis.no_data",
         "'hold' is not valid; valid values are 'fail', 'pass', 'extend'"),
        ("environments.prod.post_promotion", {"enabled": "yes"}, "environments.prod.post_promotion.enabled", "true or false"),
        ("environments.prod.post_promotion", {"max_error_rate": 5}, "environments.prod.post_promotion.max_error_rate", "from 0 to 1"),
        ("environments.prod.post_promotion", {"lookback_s": 10}, "environments.prod.post_promotion.lookback_s", "from 60 to 604800"),
        ("environments.prod.post_promotion", {"window": 10}, "environments.prod.post_promotion.window", "valid fields are enabled"),
    ],
)
def test_each_rule_names_the_field(path, value, error_path, says):
    with pytest.raises(ConfigError) as caught:
        parse_service(with_change(path, value))
    assert caught.value.path == error_path
    assert says in caught.value.message


def test_the_nightly_environment_is_one_the_service_has():
    doc = with_change("nightly", {"cron": "0 2 * * *", "environment": "prod"})
    del doc["environments"]["prod"]
    with pytest.raises(ConfigError) as caught:
        parse_service(doc)
    assert str(caught.value) == "nightly.environment: 'prod' is not valid; valid values are 'dev', 'staging'"


def test_a_bad_file_is_named(tmp_path):
    bad = tmp_path / "shop.yaml"
    bad.write_text(yaml.safe_dump(with_change("environments.prod.strategy", "bluegreen")))
    with pytest.raises(ConfigError) as caught:
        load_catalog(tmp_path)
    assert str(caught.value).startswith(f"{bad}: environments.prod.strategy: 'bluegreen' is not valid")


def test_name_must_match_the_file(tmp_path):
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(GOOD))
    with pytest.raises(ConfigError, match="must match the file name 'other'"):
        load_service(path)


def test_invalid_yaml_is_named(tmp_path):
    path = tmp_path / "shop.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"shop.yaml: \(file\): is not valid YAML"):
        load_service(path)


def test_missing_catalog_directory(tmp_path):
    with pytest.raises(ConfigError, match="DEPLOYFLOW_CATALOG"):
        load_catalog(tmp_path / "nowhere")


@pytest.mark.parametrize(
    ("repo", "expected"),
    [
        ("https://git.example.invalid/a.git", "https://git.example.invalid/a.git"),
        ("git@git.example.invalid:a.git", "git@git.example.invalid:a.git"),
        ("/srv/git/a", "/srv/git/a"),
        (".", "/opt/deployflow"),
        ("services/a", "/opt/deployflow/services/a"),
    ],
)
def test_source_location(repo, expected):
    service = parse_service(with_change("source.repo", repo))
    assert service.source.location(Path("/opt/deployflow")) == expected


# ---- kubernetes environments ------------------------------------------------------------

K8S = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
    "staging": {"platform": "kubernetes", "kubernetes": {"namespace": "shop-staging"}},
    "prod": {"platform": "kubernetes", "rolling": {"batch_size": 2, "max_unavailable": 1}},
}}


def test_a_kubernetes_environment_takes_the_seed_defaults():
    service = parse_service(K8S)
    prod = service.environments["prod"].kubernetes
    assert (prod.namespace, prod.connection_id, prod.service_account) == ("prod", "kubernetes_default", "deployflow-deployer")
    assert (prod.traffic, prod.on_finish_action) == ("gateway", "delete_pod")
    resources = service.environments["prod"].resources
    assert (resources.cpu, resources.memory, resources.pids) == ("500m", "1Gi", 512)
    assert prod.service_url("shop-preview") == "http://shop-preview.prod.svc.cluster.local"
    assert service.environments["prod"].rolling.max_unavailable == 1
    assert service.platform == "kubernetes" and parse_service(GOOD).platform == "docker"
    assert load_service(ROOT / "include" / "k8s" / "services" / "sample-app.yaml").platform == "kubernetes"


@pytest.mark.parametrize("change,error_path,says", [
    (("staging", "kubernetes", "traffic", "istio"), "environments.staging.kubernetes.traffic",
     "'istio' is not valid; valid values are 'gateway', 'replicas'"),
    (("staging", "kubernetes", "flavour", 1), "environments.staging.kubernetes.flavour", "unknown field; valid fields are namespace,"),
    (("staging", "kubernetes", "namespace", "Shop_Prod"), "environments.staging.kubernetes.namespace", "use lower-case letters"),
    (("staging", "kubernetes", "url", "http://example.com"), "environments.staging.kubernetes.url", "must be an http(s) URL containing {name}"),
    (("staging", "kubernetes", "url", "http://{name}.{zone}"), "environments.staging.kubernetes.url", "the only placeholders are {name} and {namespace}"),
    (("staging", "kubernetes", "cpu", "1"), "environments.staging.kubernetes.cpu", "has moved to environments.staging.resources.cpu"),
    (("staging", "resources", "cpu", "half"), "environments.staging.resources.cpu", "must be a quantity of CPUs"),
    (("staging", "resources", "pids", 2), "environments.staging.resources.pids", "must be a whole number from 16 to 65536"),
    (("staging", "kubernetes", "on_finish_action", "delete"), "environments.staging.kubernetes.on_finish_action",
     "valid values are 'delete_pod', 'delete_succeeded_pod', 'keep_pod'"),
    (("staging", "kubernetes", "hostnames", ["Shop.Example.com"]), "environments.staging.kubernetes.hostnames[0]", "DNS host name"),
    (("staging", "kubernetes", "hostnames", ["shop.example.com\n"]), "environments.staging.kubernetes.hostnames[0]", "DNS host name"),
    (("staging", "kubernetes", "namespace", "shop\n"), "environments.staging.kubernetes.namespace", "use lower-case letters"),
    (("staging", "resources", "cpu", "1\n"), "environments.staging.resources.cpu", "must be a quantity of CPUs"),
    (("staging", "kubernetes", "namespace", "prod"), "environments.prod.kubernetes.namespace", "is already staging's namespace"),
    (("staging", "platform", "docker"), "environments.staging.port", "is required on the docker platform"),
])
def test_each_kubernetes_rule_names_the_field(change, error_path, says):
    raw = copy.deepcopy(K8S)
    *keys, last, value = change
    node = raw["environments"]
    for key in keys:
        node = node.setdefault(key, {})
    node[last] = value
    with pytest.raises(ConfigError) as caught:
        parse_service(raw)
    assert caught.value.path == error_path and says in caught.value.message


def test_a_kubernetes_block_on_a_docker_environment_is_refused():
    raw = copy.deepcopy(GOOD)
    raw["environments"]["dev"]["kubernetes"] = {"namespace": "dev"}
    with pytest.raises(ConfigError, match="environments.dev.kubernetes: is only for platform 'kubernetes'"):
        parse_service(raw)


def test_one_service_runs_on_one_platform():
    raw = copy.deepcopy(K8S)
    raw["environments"]["dev"] = {"platform": "docker", "port": 18101}
    with pytest.raises(ConfigError) as caught:
        parse_service(raw)
    assert caught.value.path == "environments.staging.platform"
    assert "'kubernetes' differs from dev's 'docker'; a service's environments share one platform" in caught.value.message


def test_the_checkout_and_the_catalog_are_found_without_environment(monkeypatch):
    from deployflow.catalog import catalog_dir, project_root

    monkeypatch.delenv("DEPLOYFLOW_HOME", raising=False)
    monkeypatch.delenv("DEPLOYFLOW_CATALOG", raising=False)
    assert project_root() == ROOT
    assert catalog_dir() == ROOT / "include" / "services"
