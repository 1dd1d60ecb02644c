"""Grants: a catalog file reaches only what its service is granted, at load and again at run time."""

from __future__ import annotations

import copy
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.resolve import ResolveReleaseOperator
from deployflow.airflow.task_ids import REFUSED
from deployflow.catalog import load_catalog, load_service
from deployflow.catalog.grants import GRANTS_ENV
from deployflow.catalog.grants_file import load_grants, parse_grants
from deployflow.errors import ConfigError
from deployflow.pipeline.checkout import credentials_env, run_git
from tests.unit.test_resolve_task import RunTI, context

SHOP = {"name": "shop", "source": {"repo": "services/shop"}, "environments": {"dev": {"port": 18301}, "prod": {"port": 18303}}}


@pytest.fixture
def catalog(tmp_path, monkeypatch) -> Path:
    """A catalog directory with its grants file beside it (no DEPLOYFLOW_GRANTS: the default place)."""
    monkeypatch.delenv(GRANTS_ENV, raising=False)
    directory = tmp_path / "services"
    directory.mkdir()
    monkeypatch.setenv("DEPLOYFLOW_CATALOG", str(directory))
    return directory


def write(catalog: Path, doc: dict, grants: dict | None = None) -> Path:
    path = catalog / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    if grants is not None:
        (catalog.parent / "grants.yaml").write_text(yaml.safe_dump(grants))
    return path


def changed(where: str, value: object, doc: dict = SHOP) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = where.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


SECRET = {"DB_PASSWORD": {"connection": "payments_db"}}


# ---- refused at load, naming the field and the grant ---------------------------------------------------

@pytest.mark.parametrize(("where", "value", "field", "grant"), [
    ("environments.prod.config", {"secrets": SECRET}, "environments.prod.config.secrets.DB_PASSWORD.connection",
     "connection 'payments_db', which shop is not granted; the platform team grants it in {grants} under services.shop.connections"),
    ("environments.prod.config", {"secrets": {"KEY": {"variable": "billing_key"}}}, "environments.prod.config.secrets.KEY.variable",
     "variable 'billing_key', which shop is not granted; the platform team grants it in {grants} under services.shop.variables"),
    ("environments.prod.config", {"files": {"tls.key": {"secret": {"variable": "other_tls"}}}},
     "environments.prod.config.files.tls.key.secret.variable", "variable 'other_tls'"),
    ("environments.prod.docker_host", {"connection": "docker_prod", "queue": "prod-host"},
     "environments.prod.docker_host.connection", "Docker host 'docker_prod', which shop is not granted"),
    ("environments.prod.notifications", [{"kind": "webhook", "connection": "billing_hook"}],
     "environments.prod.notifications[0].connection", "connection 'billing_hook'"),
    ("source.repo", "/home/billing/repo", "source.repo",
     "repository '/home/billing/repo', which shop is not granted; the platform team grants it in {grants} under services.shop.repositories"),
    ("source.repo", "https://git.example.com/billing/core.git", "source.repo", "repository 'https://git.example.com/billing/core.git'"),
])
def test_a_file_naming_what_it_is_not_granted_is_refused_at_load(catalog, where, value, field, grant):
    path = write(catalog, changed(where, value))
    with pytest.raises(ConfigError) as refused:
        load_service(path)
    grants = catalog.parent / "grants.yaml"
    assert str(refused.value).startswith(f"{path}: {field}: names the ")
    assert grant.format(grants=f"{grants} (no such file: the defaults only)") in str(refused.value)


@pytest.mark.parametrize(("namespace", "account", "connection", "field"), [
    ("kube-system", "deployflow-deployer", "kubernetes_default", "environments.prod.kubernetes.namespace"),
    ("shop-prod", "cluster-admin", "kubernetes_default", "environments.prod.kubernetes.service_account"),
    ("shop-prod", "deployflow-deployer", "billing_cluster", "environments.prod.kubernetes.connection_id"),
])
def test_kubernetes_namespaces_accounts_and_clusters_are_granted(catalog, namespace, account, connection, field):
    kube = changed("environments", {"prod": {"platform": "kubernetes", "kubernetes": {
        "namespace": namespace, "service_account": account, "connection_id": connection}}})
    with pytest.raises(ConfigError, match=f"{field}: names the .*which shop is not granted"):
        load_service(write(catalog, kube))
    ok = changed("environments.prod.kubernetes", {"namespace": "shop-prod"}, kube)
    assert load_service(write(catalog, ok)).environments["prod"].kubernetes.namespace == "shop-prod"


def test_what_is_named_after_the_service_is_granted_without_a_file(catalog):
    doc = changed("environments.prod.config", {"secrets": {"A": {"connection": "shop_db"}, "B": {"variable": "shop_api_key"}}})
    service = load_service(write(catalog, doc))
    assert {r.name for r in service.environments["prod"].config.secrets.values()} == {"shop_db", "shop_api_key"}
    assert not (catalog.parent / "grants.yaml").exists()


def test_the_grants_file_grants_per_service_and_per_team(catalog):
    doc = changed("environments.prod.config", {"secrets": SECRET})
    doc = changed("source.repo", "https://git.example.com/payments/shop.git", doc)
    repository = {"repositories": ["https://git.example.com/payments/"]}
    with pytest.raises(ConfigError, match="payments_db"):
        load_service(write(catalog, doc, {"services": {"shop": repository, "other": {"connections": ["payments_db"]}}}))
    write(catalog, doc, {"services": {"shop": {"connections": ["payments_*"]}},
                         "teams": {"payments": {"services": ["shop", "billing"], "repositories": ["https://git.example.com/payments/"]}}})
    assert load_service(catalog / "shop.yaml").source.repo == "https://git.example.com/payments/shop.git"


@pytest.mark.parametrize(("granted", "repo", "allowed"), [
    ("/srv/shop", "/srv/shop", True),
    ("/srv/shop", "/srv/shop/sub", True),
    ("/srv/shop", "/srv/shop-evil", False),
    ("/srv/", "/srv/../etc", False),  # refused by parsing already ('..'), never normalised into the grant
    ("https://git.example.com/acme", "https://git.example.com/acme-evil/x.git", False),
    ("https://git.example.com/acme/", "https://git.example.com/acme/x.git", True),
    ("git@git.example.com:acme/", "git@git.example.com:acme/x.git", True),
    ("git@git.example.com:acme/", "git@git.example.com:other/x.git", False),
    ("/srv/", "deploy@git.example.com:acme/x.git", False),  # scp-like with any user: remote, never "relative"
])
def test_a_repository_grant_is_a_prefix_that_ends_at_a_boundary(catalog, granted, repo, allowed):
    write(catalog, changed("source.repo", repo), {"services": {"shop": {"repositories": [granted]}}})
    if allowed:
        assert load_service(catalog / "shop.yaml").source.repo == repo
    else:
        with pytest.raises(ConfigError, match="source.repo"):
            load_service(catalog / "shop.yaml")


@pytest.mark.parametrize("secret", [{"connection": "deployflow_ledger"}, {"variable": "deployflow_config_key"},
                                    {"connection": "airflow_db"}])
def test_the_stacks_own_secrets_can_never_be_granted(catalog, secret):
    doc = changed("environments.prod.config", {"secrets": {"X": secret}})
    with pytest.raises(ConfigError, match="one of the stack's own .* which no service can be granted"):
        load_service(write(catalog, doc, {"teams": {"all": {"services": ["*"], "connections": ["*"], "variables": ["*"]}}}))
    with pytest.raises(ConfigError, match=r"services.shop.connections\[0\]: 'deployflow_\*' names the stack's own secrets"):
        load_service(write(catalog, doc, {"services": {"shop": {"connections": ["deployflow_*"]}}}))


@pytest.mark.parametrize(("grants", "error"), [
    ({"services": {"shop": {"connection": ["x"]}}}, "services.shop.connection: unknown field; valid fields are connections,"),
    ({"services": {"shop": {"connections": ["a b"]}}}, r"services.shop.connections\[0\]: 'a b' is not valid; must be an id or a prefix"),
    ({"services": {"shop": {"repositories": ["git.example.com"]}}}, r"services.shop.repositories\[0\]: 'git.example.com' is not valid"),
    ({"services": {"shop": {"deployers": {"qa": ["alice"]}}}}, "services.shop.deployers.qa: unknown environment; valid values are dev"),
    ({"teams": {"t": {"services": ["Shop!"]}}}, r"teams.t.services\[0\]: 'Shop!' is not valid"),
])
def test_a_bad_grants_file_names_its_field(catalog, grants, error):
    path = write(catalog, SHOP, grants)
    with pytest.raises(ConfigError, match=error) as refused:
        load_service(path)
    assert str(catalog.parent / "grants.yaml") in str(refused.value)


def test_the_grants_may_not_live_where_the_teams_write(catalog, monkeypatch):
    inside = catalog / "grants.yml"
    inside.write_text("services: {}\n")
    monkeypatch.setenv(GRANTS_ENV, str(inside))
    with pytest.raises(ConfigError, match="is inside the catalog directory .* the grants live outside it"):
        load_catalog(catalog)
    monkeypatch.setenv(GRANTS_ENV, str(catalog.parent / "missing.yaml"))
    with pytest.raises(ConfigError, match=f"{GRANTS_ENV} names .*missing.yaml, which does not exist"):
        load_grants(catalog)


# ---- again at run time: resolve --------------------------------------------------------------------------

def test_a_grant_withdrawn_after_load_stops_the_next_release_at_resolve(catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    doc = changed("environments.prod.config", {"secrets": SECRET})
    service = load_service(write(catalog, doc, {"services": {"shop": {"connections": ["payments_db"]}}}))
    resolve = ResolveReleaseOperator(task_id="resolve", service=service)
    ti = RunTI()
    assert resolve.execute(context(ti, {"environment": "prod"}))["environment"] == "prod"

    write(catalog, doc, {"services": {"shop": {"connections": ["payments_api"]}}})  # withdrawn (another size: re-read)
    with pytest.raises(AirflowFailException) as refused:
        resolve.execute(context(ti, {"environment": "prod"}))
    assert "environments.prod.config.secrets.DB_PASSWORD.connection: names the connection 'payments_db', which shop is " \
           "not granted" in str(refused.value)
    assert ti.pushed[("resolve", REFUSED)] == str(refused.value)  # the record task writes it to the ledger


def test_only_the_deployers_release_to_an_environment_that_names_them(catalog, tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    service = load_service(write(catalog, SHOP, {"services": {"shop": {"deployers": {"prod": ["alice", "bob"]}}}}))
    resolve = ResolveReleaseOperator(task_id="resolve", service=service)
    assert resolve.execute(context(RunTI(), {"environment": "prod"}, user="bob"))["environment"] == "prod"
    assert resolve.execute(context(RunTI(), {"environment": "dev"}, user="mallory"))["environment"] == "dev"  # unrestricted
    with pytest.raises(AirflowFailException, match="'mallory' may not release shop to prod; its deployers are alice, bob"):
        resolve.execute(context(RunTI(), {"environment": "prod"}, user="mallory"))
    with pytest.raises(AirflowFailException, match="'@schedule' may not release shop to prod"):
        resolve.execute(context(RunTI(), {"environment": "prod"}, user=None, run_type="scheduled"))


def test_the_task_reads_its_grants_again_only_when_the_file_changes(catalog):
    write(catalog, SHOP, {"services": {"shop": {"connections": ["a"]}}})
    assert load_grants(catalog) is load_grants(catalog)
    write(catalog, SHOP, {"services": {"shop": {"connections": ["ab"]}}})
    assert load_grants(catalog).services["shop"].patterns["connections"] == ("ab",)


def test_parse_grants_alone_needs_no_file():
    grants = parse_grants({"teams": {"t": {"services": ["shop-*"], "variables": ["t_*"]}}}, "(test)").of("shop-api")
    assert grants.allows("variables", "t_key") and not grants.allows("variables", "u_key")
    assert grants.allows("variables", "shop-api_key") and grants.allows("variables", "shop_api_key")  # named after it
    assert grants.deployers("prod") is None


# ---- git credentials: from a connection, never in the URL -----------------------------------------------

@pytest.mark.parametrize("repo", ["https://user:token@git.example.com/a.git", "https://token@git.example.com/a.git",
                                  "file:///etc", "ext::sh -c id", "../../other", "-uhack", "http://git.example.com/a.git"])
def test_a_repository_git_would_do_more_with_is_refused(catalog, repo):
    with pytest.raises(ConfigError, match=r"source.repo: .* is not valid: .*; a repository is an https:// or ssh:// URL"):
        load_service(write(catalog, changed("source.repo", repo)))


def test_the_credentials_reach_git_through_its_environment_only(tmp_path):
    env = credentials_env("ci", "s3cret")
    repo = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    assert run_git(["git", "-C", str(repo), "config", "--get", "http.extraHeader"], env=env) == \
        "Authorization: Basic Y2k6czNjcmV0"  # base64 of ci:s3cret
    assert "s3cret" not in (repo / ".git" / "config").read_text()
    assert "GIT_CONFIG_VALUE_0" not in os.environ


def test_credentials_name_a_granted_connection_and_need_https(catalog):
    doc = changed("source", {"repo": "https://git.example.com/shop/shop.git", "credentials": {"connection": "github_token"}})
    grants = {"services": {"shop": {"repositories": ["https://git.example.com/shop/"]}}}
    with pytest.raises(ConfigError, match="source.credentials.connection: names the connection 'github_token', which shop"):
        load_service(write(catalog, doc, grants))
    assert load_service(write(catalog, changed("source.credentials.connection", "shop_git", doc), grants)).source.credentials == "shop_git"
    with pytest.raises(ConfigError, match="source.credentials: only an https:// repository takes credentials"):
        load_service(write(catalog, changed("source", {"repo": "git@h:shop.git", "credentials": {"connection": "shop_git"}})))


def test_the_shipped_catalogs_load_with_no_grants_written(monkeypatch):
    monkeypatch.delenv(GRANTS_ENV, raising=False)
    root = Path(__file__).resolve().parents[2]
    assert not (root / "include" / "grants.yaml").exists()
    assert list(load_catalog(root / "include" / "services")) == ["sample-app"]
    # The Kubernetes sample names its clusters' connections: its example grants file beside it grants them.
    assert load_service(root / "include" / "k8s" / "services" / "sample-app.yaml").name == "sample-app"



def test_builds_get_the_network_only_where_granted(catalog):
    write(catalog, SHOP, {"teams": {"web": {"services": ["shop"], "build_network": "host"}}})
    assert load_grants(catalog).of("shop").build_network == "host"
    assert load_grants(catalog).of("cart").build_network == "none"
    with pytest.raises(ConfigError, match="teams.web.build_network: 'bridge' is not valid; valid values are 'none', 'host'"):
        write(catalog, SHOP, {"teams": {"web": {"services": ["shop"], "build_network": "bridge"}}})
        load_grants(catalog)
