"""The platform as one axis: ``site_for`` picks the site by the environment's platform, and each site makes
the parts the engine drives there, asking its clients only when a part needs them."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kubernetes.client import ApiClient

from deployflow.analysis.load_container import ContainerLoad
from deployflow.analysis.loadgen import InProcessLoad
from deployflow.catalog import parse_service
from deployflow.platforms.base import Clients, NotHere, StackSettings
from deployflow.platforms.docker import DockerSite, DockerWorkload
from deployflow.platforms.factory import site_for
from deployflow.platforms.kubernetes import KubernetesSite
from deployflow.record import StepFailed
from deployflow.routers.haproxy_traffic import HAProxyTraffic
from deployflow.settings import Settings
from deployflow.stores.file import FileStore

SERVICE = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
    "dev": {"port": 18301, "strategy": "rolling"},
    "staging": {"port": 18302, "docker_host": "df_two"},
}})
CLUSTER = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {
    "prod": {"platform": "kubernetes", "strategy": "rolling", "rolling": {"batch_size": 1, "max_unavailable": 1},
             "kubernetes": {"namespace": "shop-prod", "front_url": "https://shop.example.com/"}},
}})


class Counting:
    """A client factory that counts how often a site asked for its client."""

    def __init__(self) -> None:
        self.asked: list[object] = []

    def __call__(self, *args: object) -> object:
        self.asked.append(args)
        return object()


def test_the_environments_platform_picks_its_site_and_an_unknown_one_is_refused_naming_the_valid_ones():
    assert isinstance(site_for(SERVICE, "dev", clients=Clients()), DockerSite)
    assert isinstance(site_for(CLUSTER, "prod", clients=Clients()), KubernetesSite)
    with pytest.raises(ValueError, match="environment: 'qa' is not valid; valid values are dev, staging"):
        site_for(SERVICE, "qa", clients=Clients())
    nomad = replace(SERVICE, environments={"dev": replace(SERVICE.environments["dev"], platform="nomad")})
    with pytest.raises(ValueError, match="platform 'nomad' is not known; valid values are 'docker', 'kubernetes'"):
        site_for(nomad, "dev", clients=Clients())


def test_a_site_asks_for_its_client_only_when_a_part_needs_it_and_then_once(tmp_path):
    docker, kubernetes = Counting(), Counting()
    clients = Clients(docker=docker, kubernetes=kubernetes)
    site = site_for(SERVICE, "dev", clients=clients, settings=StackSettings("t", tmp_path))
    plan = site.strategy()
    assert (site.front_url(), docker.asked) == ("http://127.0.0.1:18301", [])
    workload = site.workload(plan)
    assert isinstance(workload, DockerWorkload) and isinstance(site.traffic(plan, workload), HAProxyTraffic)
    assert docker.asked == [()] and kubernetes.asked == []
    k8s = site_for(CLUSTER, "prod", clients=clients)
    assert (k8s.front_url(), kubernetes.asked) == ("https://shop.example.com", [])


def test_a_docker_sites_files_are_the_stacks_and_its_state_directory_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    site = site_for(SERVICE, "dev", clients=Clients(docker=Counting()), settings=StackSettings("t", ".state"))
    assert site.state_dir == tmp_path / ".state"  # the deployer mounts it by this path: never relative
    assert site.targets_path == tmp_path / ".state" / "targets" / "t-shop-dev.json"
    store = site.store()
    assert isinstance(store, FileStore) and store.path == tmp_path / ".state" / "t-shop-dev" / "release.json"
    assert site.configs().dir == tmp_path / ".state" / "config" / "t-shop-dev"
    load = site.load()
    assert isinstance(load, ContainerLoad) and load.name == "df-t-shop-dev-load"


def test_rolling_is_in_place_where_the_platform_replaces_its_own_instances():
    assert site_for(CLUSTER, "prod", clients=Clients()).strategy().in_place is True
    assert site_for(SERVICE, "dev", clients=Clients()).strategy().in_place is False
    assert site_for(SERVICE, "dev", clients=Clients()).strategy("blue-green").in_place is False


def test_the_kubernetes_site_reaches_the_cluster_through_the_environments_connection():
    asked: list[str] = []

    def kubernetes(connection_id: str) -> object:
        asked.append(connection_id)
        return ApiClient()  # a client of no cluster: nothing is called here

    site = site_for(CLUSTER, "prod", clients=Clients(kubernetes=kubernetes))
    assert isinstance(site.load(), InProcessLoad) and asked == []
    with pytest.raises(StepFailed, match="a kubernetes environment: recover brings back Docker hosts only"):
        site.check_recoverable(None)
    assert site.cluster.namespace == "shop-prod" and site.cluster is site.cluster
    assert asked == [CLUSTER.environments["prod"].kubernetes.connection_id]


@pytest.mark.parametrize(("environment", "docker_host", "here"), [
    ("dev", None, True), ("dev", "df_two", False), ("staging", "df_two", True), ("staging", None, False),
])
def test_recovery_is_the_work_of_the_host_an_environment_runs_on(environment, docker_host, here):
    site = site_for(SERVICE, environment, clients=Clients())
    if here:
        site.check_recoverable(docker_host)
    else:
        with pytest.raises(NotHere, match="not this host's: it runs on"):
            site.check_recoverable(docker_host)


def test_a_docker_site_probes_readiness_through_a_session_of_its_own_unless_given_one():
    """Recovery builds its site with no session: its workload must still probe (a None session failed it)."""
    clients = Clients(docker=Counting())
    plan = site_for(SERVICE, "dev", clients=clients).strategy()
    assert site_for(SERVICE, "dev", clients=clients).workload(plan).session is not None
    given = object()
    assert site_for(SERVICE, "dev", clients=clients, session=given).workload(plan).session is given


def test_the_stack_settings_are_the_docker_sites_part_of_the_stack_s_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    home = {"DEPLOYFLOW_HOME": "/srv/deployflow"}
    assert StackSettings.of(Settings.from_environ(home)) == StackSettings("local", "/srv/deployflow/.state", "deployflow/haproxy:2")
    given = {**home, "DEPLOYFLOW_STACK": "e2e", "DEPLOYFLOW_STATE": "state", "DEPLOYFLOW_HAPROXY_IMAGE": "h:2"}
    assert StackSettings.of(Settings.from_environ(given)) == StackSettings("e2e", tmp_path / "state", "h:2")
