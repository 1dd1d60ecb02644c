"""Every container a release starts, of each kind, as the engine is asked to create it: no capability, no new
privileges, memory and pids limits, its user, and its image by ID or digest, never a tag."""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.dag_factory import release_dag
from deployflow.airflow.deployer_operator import DOCKER_SOCKET, DeployerOperator
from deployflow.airflow.hardened_docker import HardenedDockerOperator
from deployflow.airflow.operators import PytestSuiteOperator
from deployflow.analysis.load_container import ContainerLoad
from deployflow.catalog import parse_service
from deployflow.configuration import Resources
from deployflow.pipeline.build import build_kwargs
from deployflow.pipeline.build import ImageSpec
from deployflow.platforms.base import InstanceSpec
from deployflow.platforms.docker_engine import DockerPlatform
from deployflow.platforms.hardening import is_pinned, owner, pinned, socket_group
from deployflow.routers.haproxy import HAProxyRouter
from tests.unit.fakes import FakeDockerAPI, FakeDockerClient, image_id
from tests.unit.test_airflow_adapters import step_context

SERVICE = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {"port": 18997}}})
ME = f"{os.getuid()}:{os.getgid()}"  # who owns what the test makes in tmp_path
MiB = 2**20


def instance(tmp_path) -> tuple[str, dict[str, Any]]:
    client = FakeDockerClient()
    spec = InstanceSpec("shop", "prod", "v2", "reg/shop:v2", "green", 0, resources=Resources(memory="128Mi", pids=100))
    DockerPlatform(client, stack="t", ports=(41900, 41999)).start(spec)
    [(_, image, _, kwargs)] = client.calls_of("create")
    return image, kwargs


def proxy(tmp_path) -> tuple[str, dict[str, Any]]:
    client = FakeDockerClient()
    router = HAProxyRouter(client, stack="t", service="shop", environment="prod", front_port=18103, check_path="/ready",
                           state_dir=tmp_path, image="deployflow/haproxy:2")
    router.admin = SimpleNamespace(send=lambda command: "")
    router.ensure()
    [(_, image, _, kwargs)] = client.calls_of("run")
    return image, kwargs


def load(tmp_path) -> tuple[str, dict[str, Any]]:
    client = FakeDockerClient()
    ContainerLoad(client, stack="t", service="shop", environment="prod").start(
        image="deployflow/deployer:abc", url="http://127.0.0.1:18997/", rate=5, max_seconds=60, judging_over=lambda: False)
    [(_, image, _, kwargs)] = client.calls_of("run")
    return image, kwargs


def created(task: HardenedDockerOperator, api: FakeDockerAPI, context: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Run ``task`` on ``api``; the image, and the host config with the user, its container was created with."""
    task.__dict__["hook"] = SimpleNamespace(api_client=api, client_created=True)  # DockerOperator.cli is hook.api_client
    try:
        task.execute(context)
    except AirflowFailException:
        pass  # the fake's container printed no result: what it was created with is what counts here
    return api.created["image"], {**api.created["host_config"], "user": api.created["user"]}


def deployer(tmp_path, monkeypatch) -> tuple[str, dict[str, Any]]:
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    task = DeployerOperator(task_id="shift", step="shift", service=SERVICE, service_file=str(tmp_path / "shop.yaml"),
                            environment_name="prod", version="v2", image_ref="reg/shop@sha256:2", strategy="canary")
    return created(task, FakeDockerAPI(0, []), step_context("prod"))


def suite(tmp_path) -> tuple[str, dict[str, Any]]:
    task = PytestSuiteOperator(task_id="unit", suite="unit", coverage_source="app", coverage_dir=str(tmp_path),
                               image="sha256:built")
    return created(task, FakeDockerAPI(0, []), {})


def gated_suite(tmp_path) -> tuple[str, dict[str, Any]]:
    """A suite that runs the coverage gate after pytest where it passes last: the same container."""
    task = release_dag(SERVICE, tmp_path / "shop.yaml").get_task("test.unit")
    task.image, task.mounts = "sha256:built", []  # as rendered from the build's XCom
    assert task.command[:2] == ["sh", "-c"]
    return created(task, FakeDockerAPI(0, []), {})


def run(kind, tmp_path, monkeypatch) -> tuple[str, dict[str, Any]]:
    return kind(tmp_path, monkeypatch) if kind is deployer else kind(tmp_path)


@pytest.mark.parametrize(("kind", "image", "memory", "pids", "user"), [
    (instance, image_id("reg/shop:v2"), 128 * MiB, 100, None),  # the catalog's resources; the image's own user
    (proxy, image_id("deployflow/haproxy:2"), 256 * MiB, 256, ME),  # the owner of its directory
    (load, image_id("deployflow/deployer:abc"), 256 * MiB, 64, None),  # the deployer image's user: not root
    (deployer, "sha256:deployer", 512 * MiB, 256, "10002:10002" if os.geteuid() == 0 else ME),  # the state's owner
    # (handed over to the deployer image's user where Airflow is root: see the last test)
    (suite, "sha256:built", 2048 * MiB, 1024, None),  # the built image by ID, as its own user
    (gated_suite, "sha256:built", 2048 * MiB, 1024, None),
])
def test_every_container_of_a_release_has_no_capability_and_runs_its_image_pinned(
        kind, image, memory, pids, user, tmp_path, monkeypatch):
    created_from, options = run(kind, tmp_path, monkeypatch)
    assert created_from == image and is_pinned(created_from)
    assert options["cap_drop"] == ["ALL"]
    assert not options.get("cap_add")  # none needs one back: front ports are 1024 and above
    assert options["security_opt"] == ["no-new-privileges"]
    assert not options.get("privileged")
    assert (options["mem_limit"], options["memswap_limit"], options["pids_limit"]) == (memory, memory, pids)
    assert options.get("user") == user


def test_the_deployer_reaches_the_docker_socket_through_its_group(tmp_path, monkeypatch):
    _, options = deployer(tmp_path, monkeypatch)
    assert options.get("group_add", []) == [str(g) for g in socket_group(DOCKER_SOCKET)]
    assert socket_group(str(tmp_path / "no.sock")) == ()  # another host's socket: no group to add from here


def test_the_release_dag_tests_the_built_image_by_its_id(tmp_path):
    dag = release_dag(SERVICE, tmp_path / "shop.yaml")
    for task_id in ("test.unit", "test.integration"):
        assert dag.get_task(task_id).image == "{{ ti.xcom_pull(task_ids='build')['image_id'] }}"


def test_a_build_has_no_network_for_its_run_steps():
    # The build API takes no cap_drop: RUN steps keep NET_RAW, so they get no network to sniff.
    assert build_kwargs(ImageSpec("/ctx", "Dockerfile", "shop", "v1"))["network_mode"] == "none"
    assert build_kwargs(ImageSpec("/ctx", "Dockerfile", "shop", "v1", network="host"))["network_mode"] == "host"  # granted


@pytest.mark.parametrize(("image", "absent", "expected", "pulls"), [
    ("reg/shop@sha256:2", set(), "reg/shop@sha256:2", []),  # pinned already: used as is
    ("reg/shop:v2@sha256:2", set(), "reg/shop:v2@sha256:2", []),
    ("sha256:abc", set(), "sha256:abc", []),
    ("deployflow/haproxy:2", set(), image_id("deployflow/haproxy:2"), []),  # a tag: the engine's image for it now
    ("reg/shop:v2", {"reg/shop:v2"}, image_id("reg/shop:v2"), [("pull", "reg/shop:v2")]),  # pulled first
])
def test_pinned(image, absent, expected, pulls):
    client = FakeDockerClient()
    client.api.absent = set(absent)
    assert pinned(client.api, image) == expected
    assert client.calls == pulls


def test_owner_is_uid_and_gid(tmp_path):
    assert owner(tmp_path) == ME


def test_the_release_dags_test_containers_carry_the_stack_label(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STACK", "e2e")
    dag = release_dag(SERVICE, tmp_path / "shop.yaml")
    for task_id in ("test.unit", "test.performance", "prepare"):
        assert dag.get_task(task_id).labels["io.deployflow.stack"] == "e2e"  # the e2e finds every container by it


def test_the_state_is_handed_over_to_the_release_user_where_airflow_is_root(tmp_path):
    """The deployer and its proxy never run as root: what root wrote in the state (a configuration, a recovery's
    record) is chowned to the deployer image's user before a step; the stack's Prometheus data are left alone."""
    from deployflow.platforms.hardening import RELEASE_USER, release_user

    assert os.geteuid() == 0, "the suite runs as root here (CI's dockerd needs it): this is the root case"
    (tmp_path / "config" / "e2e-shop-prod").mkdir(parents=True)
    written = tmp_path / "config" / "e2e-shop-prod" / "abc.json"
    written.write_text("{}")
    written.chmod(0o600)
    (tmp_path / "prometheus" / "data").mkdir(parents=True)
    assert release_user(tmp_path) == "%d:%d" % RELEASE_USER
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (tmp_path, written.parent, written)} == {RELEASE_USER}
    assert (tmp_path / "prometheus" / "data").stat().st_uid == 0


def test_a_file_another_release_replaces_during_the_hand_over_is_passed_over(tmp_path, monkeypatch):
    """Fifty releases at once share the state directory: a record's ``.release.json.tmp`` listed by the walk may be
    renamed by another release's deployer before it is chowned (it failed a shift step with FileNotFoundError)."""
    from deployflow.platforms import hardening

    (tmp_path / "t-cart-dev").mkdir()
    vanishing = tmp_path / "t-cart-dev" / ".release.json.tmp"
    vanishing.write_text("{}")
    lstat = os.lstat

    def renamed_meanwhile(path, *args, **kwargs):
        if str(path) == str(vanishing):
            vanishing.replace(vanishing.with_name("release.json"))
        return lstat(path, *args, **kwargs)

    monkeypatch.setattr(hardening.os, "lstat", renamed_meanwhile)
    assert hardening.release_user(tmp_path) == "%d:%d" % hardening.RELEASE_USER
    assert (tmp_path / "t-cart-dev").stat().st_uid == hardening.RELEASE_USER[0]


def test_a_proxy_started_by_root_on_the_host_runs_as_the_states_owner(tmp_path):
    """A recovery runs the router in its own (root) process: the proxy's directory and files take the state's
    owner, and the proxy runs as that user, so a later restart of the engine finds what it may read and write
    (it ran as root on a directory the next step handed over, and could not make its socket again)."""
    from deployflow.platforms.hardening import RELEASE_USER, release_user

    release_user(tmp_path)  # what recover does first, as root
    _, kwargs = proxy(tmp_path)
    made = tmp_path / "t-shop-prod"
    assert kwargs["user"] == "%d:%d" % RELEASE_USER
    assert {(p.stat().st_uid, p.stat().st_gid) for p in (made, made / "haproxy.cfg", made / "routes.json")} == {RELEASE_USER}
