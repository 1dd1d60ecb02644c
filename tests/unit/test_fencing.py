"""Fenced steps (issue 22): one deployer step of an environment acts at a time, whatever dies.

A step holds a fencing token; before each write it checks that no newer step took one since, and a stale
step's write is refused (rollout/fence.py) over the Docker world of the contract suite. A retried task
takes the environment over from the try it replaces: its token first, then the earlier deployer container
stopped, waited for and removed, then its own started (airflow/deployer_operator.py, on the fake engine).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from kubernetes.client import models as k8s

from deployflow.airflow import kubernetes_deploy
from deployflow.airflow.dag_factory import release_dag
from deployflow.airflow.deployer_step import step_outcome
from deployflow.airflow.lock import lock_engine
from deployflow.catalog import load_service
from deployflow.deployer import FENCED
from deployflow.deployer import __main__ as cli
from deployflow.rollout.fence import STORE_WRITES, TRAFFIC_WRITES, WORKLOAD_WRITES, Fence, Fenced, FencedPart
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import Manifests
from deployflow.ledger.locks import EnvironmentLocks
from deployflow.record import Record
from deployflow.stores.configmap import ConfigMapStore
from deployflow.stores.file import FileStore
from tests.unit import world as k8s_world
from tests.unit.fake_kubernetes import FakeKubernetesAPI
from tests.unit.fakes import FakeDockerAPI
from tests.unit.test_airflow_adapters import DEPLOYER_LABELS, FIND, SHIFT_ARGS, deployer_step, step_context
from tests.unit.test_post_promotion import WATCH, ScriptedJudge
from tests.unit.world import FULL, World

K8S_SERVICE_FILE = Path(__file__).resolve().parents[2] / "include" / "k8s" / "services" / "sample-app.yaml"

# --- the fence, on the rollout engine's parts -------------------------------------------------------------


WRITES = {"workload": WORKLOAD_WRITES, "traffic": TRAFFIC_WRITES, "store": STORE_WRITES}


class Part:
    """A part of the engine that records what it is asked."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getattr__(self, name: str):
        return lambda *args, **kwargs: self.asked.append(name)


@pytest.mark.parametrize("writes, method", [
    ("workload", "scale"), ("workload", "remove"),
    ("traffic", "ensure"), ("traffic", "set_weights"), ("traffic", "drain"),
    ("store", "save"),
])
def test_a_stale_step_s_write_is_refused_before_it_reaches_the_part(writes, method):
    part, newest = Part(), [3]
    fenced = FencedPart(part, Fence(3, lambda: newest[0]), WRITES[writes])
    getattr(fenced, method)("blue")
    assert part.asked == [method]  # its token is the newest: the write goes through
    newest[0] = 4  # a newer step took the environment
    with pytest.raises(Fenced, match=rf"^Part\.{method} refused: this step's token 3 is stale, a newer step holds the "
                                     r"environment \(token 4\); this step stops here$"):
        getattr(fenced, method)("blue")
    assert part.asked == [method]  # never reached


@pytest.mark.parametrize("read", ["get", "urls", "wait_ready", "weights", "sizes", "status", "counters", "load", "token"])
def test_a_stale_step_may_still_read(read):
    part = Part()
    fenced = FencedPart(part, Fence(1, lambda: 2), WORKLOAD_WRITES | TRAFFIC_WRITES | STORE_WRITES)
    getattr(fenced, read)()
    assert part.asked == [read]


def test_the_token_lives_in_a_file_beside_the_release_record(tmp_path):
    store = FileStore(tmp_path / "local-shop-prod" / "release.json")
    assert store.token() == 0  # no step took one yet: any token is the newest
    store.hand_token(7)
    assert (tmp_path / "local-shop-prod" / "fence").read_text() == "7" and store.token() == 7
    assert not list((tmp_path / "local-shop-prod").glob(".*.tmp"))  # written in one rename


# --- a stale step against a newer one, on the Docker world --------------------------------------------------


def hand(w: World, token: int) -> None:
    """What Airflow does as a step starts: its token made the newest in the environment's store."""
    w.site().store().hand_token(token)


def test_a_step_whose_try_was_replaced_writes_nothing_more():
    w = World("blue-green", platform="docker")
    w.release("v1", *FULL)
    hand(w, 1)
    w.rollout("v2", fence=1).prepare()
    before = (w.shares(), w.running(), w.site().store().load(), list(w.log), list(w.router.calls))
    hand(w, 2)  # the task was killed; its retry took the environment
    with pytest.raises(Fenced, match="token 1 is stale"):
        w.rollout("v2", fence=1).shift()
    assert (w.shares(), w.running(), w.site().store().load(), list(w.log), list(w.router.calls)) == before


def test_the_newer_token_wins_and_finishes_the_release():
    w = World("blue-green", platform="docker")
    w.release("v1", *FULL)
    hand(w, 1)
    stale = w.rollout("v2", fence=1)
    stale.prepare()
    stale.shift()
    hand(w, 2)
    with pytest.raises(Fenced):
        stale.promote()
    retry = w.rollout("v2", fence=2)
    retry.shift()  # converges: the work is done already
    retry.promote()
    done = (w.shares(), w.running(), w.site().store().load())
    assert (done[:2], done[2].outcome) == (({"v2": 100}, {"v2": 3}), "promoted")
    stale.promote()  # finds the work done: reads only, and writes nothing
    stale.rollback()
    assert (w.shares(), w.running(), w.site().store().load()) == done


def test_a_promote_fenced_off_during_its_watch_never_removes_the_old_version():
    """The incident of issue 22: the killed try's promote finished its watch and removed the old version while
    its retry's watch still ran. Fenced, it stops at its first write after the watch: the old version stays."""
    w = World("blue-green", platform="docker", post_promotion=WATCH)
    w.release("v1", *FULL)
    hand(w, 1)
    w.rollout("v2", fence=1).prepare()
    w.rollout("v2", fence=1).shift()
    ScriptedJudge(w, during=lambda number: hand(w, 2) if number == 2 else None)  # the retry starts mid-watch
    with pytest.raises(Fenced, match="token 1 is stale"):
        w.rollout("v2", fence=1).promote()
    assert w.running() == {"v1": 3, "v2": 3} and w.site().store().load().outcome is None  # v1 stands by still


def test_the_deployer_cli_exits_3_when_fenced_off_and_notes_nothing(monkeypatch, capsys):
    w = World("blue-green", platform="docker")
    w.release("v1", *FULL)
    hand(w, 1)
    w.rollout("v2", fence=1).prepare()
    hand(w, 2)
    record = w.site().store().load()
    monkeypatch.setattr(cli, "_service", lambda path: w.service)
    monkeypatch.setattr(cli, "deployer_clients", lambda: None)
    monkeypatch.setattr(cli, "rollout_for", lambda *args, version, fence, **kwargs: w.rollout(version, fence=fence))
    argv = ["--service-file", "shop.yaml", "--environment", "prod", "--version", "v2", "--image", "x", "--fence", "1"]
    assert cli.main(["shift", *argv]) == FENCED == 3
    assert "refused: this step's token 1 is stale" in json.loads(capsys.readouterr().out.splitlines()[-1])["error"]
    assert w.site().store().load() == record  # no failure noted: that would be a write too
    with pytest.raises(AirflowFailException, match="is stale"):  # exit 3 is not retried
        step_outcome("shift", FENCED, {"step": "shift", "ok": False, "error": "shift refused: ... is stale"}, None)


def test_a_deployer_that_crashes_on_an_error_it_has_no_verdict_for_says_why_and_is_retried(monkeypatch, capsys):
    # As the engine's API answered under load (50 releases at once): a container gone between a list and its inspect.
    from docker.errors import NotFound

    from deployflow.deployer import CRASHED

    def crashing(*args, **kwargs):
        raise NotFound("No such container: 408c54b02295")

    monkeypatch.setattr(cli, "_service", lambda path: World("blue-green", platform="docker").service)
    monkeypatch.setattr(cli, "deployer_clients", lambda: None)
    monkeypatch.setattr(cli, "rollout_for", lambda *args, **kwargs: SimpleNamespace(shift=crashing))
    argv = ["--service-file", "shop.yaml", "--environment", "prod", "--version", "v2", "--image", "x", "--fence", "1"]
    assert cli.main(["shift", *argv]) == CRASHED == 4
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert result == {"step": "shift", "ok": False, "error": "shift crashed: NotFound: No such container: 408c54b02295"}
    with pytest.raises(AirflowException, match=r"^shift crashed: NotFound: No such container: 408c54b02295 \(may be retried\)$") \
            as raised:
        step_outcome("shift", CRASHED, result, None)
    assert raised.type is AirflowException  # not AirflowFailException: Airflow retries the step


# --- a retry takes over from a dead try, on the Docker engine ------------------------------------------------


def deployer(try_number: int, state: str, run_id: str = "run-1") -> dict:
    """A deployer container an earlier try of a shift task left on the engine."""
    return {"Id": f"{run_id}-try-{try_number}", "State": state,
            "Labels": {**DEPLOYER_LABELS, "io.deployflow.run-id": run_id, "io.deployflow.try": str(try_number)}}


class TokenAtStop(FakeDockerAPI):
    """The fake engine, noting the environment's newest token when a container is stopped."""

    def __init__(self, *args, token_file: Path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.token_file = token_file
        self.token_at_stop: str | None = None

    def stop(self, container: str, timeout: int | None = None) -> None:
        self.token_at_stop = self.token_file.read_text()
        super().stop(container, timeout)


def test_a_retry_stops_and_removes_the_dead_try_s_deployer_before_it_starts_its_own(tmp_path, monkeypatch):
    token_file = tmp_path / "state" / "local-shop-prod" / "fence"
    api = TokenAtStop(0, [b'{"step": "shift", "ok": true}\n'], earlier=[deployer(1, "running"), deployer(2, "exited", "run-0")],
                      token_file=token_file)
    task = deployer_step(api, tmp_path, monkeypatch)
    assert task.execute(step_context("prod", try_number=2)) == {"step": "shift", "ok": True}
    assert api.calls[:6] == [
        FIND,
        ("stop", "run-1-try-1", 10), ("wait", "run-1-try-1"), ("remove_container", "run-1-try-1", True),  # SIGTERM, kill after 10 s
        ("remove_container", "run-0-try-2", True),  # an earlier run's, finished: removed as found
        ("create_container", [*SHIFT_ARGS, "--fence", "1"], {**DEPLOYER_LABELS, "io.deployflow.try": "2"}),
    ]
    assert api.token_at_stop == "1"  # fenced off before it was stopped: its last writes in the grace period refused
    assert api.earlier == {}  # nothing of the dead try is left


def test_each_step_takes_a_newer_token_than_the_one_before(tmp_path, monkeypatch):
    tokens = []
    for try_number in (1, 2, 3):
        api = FakeDockerAPI(0, [b'{"step": "shift", "ok": true}\n'])
        deployer_step(api, tmp_path, monkeypatch).execute(step_context("prod", try_number=try_number))
        tokens.append(api.calls[1][1][-1])
    assert tokens == ["1", "2", "3"]
    assert (tmp_path / "state" / "local-shop-prod" / "fence").read_text() == "3"


def test_a_step_of_a_run_that_does_not_hold_the_lock_starts_nothing(tmp_path, monkeypatch):
    api = FakeDockerAPI(0, [b'{"step": "shift", "ok": true}\n'], earlier=[deployer(1, "running")])
    task = deployer_step(api, tmp_path, monkeypatch)
    step_context("prod", run_id="run-0")  # another run holds prod
    with pytest.raises(AirflowFailException, match="^run run-1 does not hold the lock of shop in prod"):
        task.execute({"ti": step_context("staging")["ti"], "run_id": "run-1"})
    assert api.calls == []  # neither stopped the holder's deployer nor started one


# --- the same on Kubernetes: the token in the release ConfigMap, a dead try's pod deleted first ----------------


def configmap_store(api: FakeKubernetesAPI) -> ConfigMapStore:
    world = World("blue-green", platform="kubernetes")
    cluster = Cluster(namespace=api.namespace, apps=api.apps, core=api.core, custom=api.custom, serialize=api.serialize)
    return ConfigMapStore(cluster, world.manifests)


def test_on_kubernetes_the_token_lives_in_the_release_configmap_and_a_saved_record_keeps_it():
    api = FakeKubernetesAPI(k8s_world.NAMESPACE)
    airflow_side, deployer_side = configmap_store(api), configmap_store(api)
    airflow_side.hand_token(1)  # before any record: the ConfigMap is made for it
    assert deployer_side.token() == 1 and deployer_side.load() is None
    record = Record(version="v2", image="shop:v2", colour="green", live="blue", previous=None)
    deployer_side.save(record)
    airflow_side.hand_token(2)  # a retry took over between the deployer's read and its save
    deployer_side.save(replace(record, version="v3"))  # replaces the ConfigMap read before: a conflict, read again
    assert deployer_side.token() == 2  # the record's save never resets the token
    assert deployer_side.load().version == "v3"
    stale = FencedPart(deployer_side, Fence(1, deployer_side.token), STORE_WRITES)
    with pytest.raises(Fenced, match="token 1 is stale"):
        stale.save(record)
    assert deployer_side.load().version == "v3"


class Pods:
    """The pods of the fake API (CoreV1Api's list and delete): a deleted pod is gone at the next list, and the
    environment's token in the release ConfigMap is noted as each is deleted."""

    def __init__(self, pods: list[k8s.V1Pod], store: ConfigMapStore) -> None:
        self.pods, self.store = {p.metadata.name: p for p in pods}, store
        self.calls: list[tuple] = []
        self.token_at_delete: list[int] = []

    def list_namespaced_pod(self, namespace: str, label_selector: str) -> k8s.V1PodList:
        self.calls.append(("list", namespace, label_selector))
        return k8s.V1PodList(items=list(self.pods.values()))

    def delete_namespaced_pod(self, name: str, namespace: str, grace_period_seconds: int) -> None:
        self.calls.append(("delete", name, namespace, grace_period_seconds))
        self.token_at_delete.append(self.store.token())
        del self.pods[name]


def pod(name: str, phase: str) -> k8s.V1Pod:
    return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name=name), status=k8s.V1PodStatus(phase=phase))


def test_on_kubernetes_a_retry_deletes_the_dead_try_s_pod_after_taking_its_token_and_before_its_own(tmp_path, monkeypatch):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path / "state"))
    service = load_service(K8S_SERVICE_FILE)
    task = release_dag(service, K8S_SERVICE_FILE).get_task("shift")
    task.environment_name, task.version = "dev", "0123456789ab"
    api = FakeKubernetesAPI(service.environments["dev"].kubernetes.namespace)
    store = ConfigMapStore(Cluster(namespace=api.namespace, apps=api.apps, core=api.core, custom=api.custom,
                                   serialize=api.serialize), Manifests(service, service.environments["dev"]))
    pods = Pods([pod("deployer-sample-app-shift-try1", "Running"), pod("deployer-sample-app-prepare-old", "Failed")], store)
    monkeypatch.setattr(kubernetes_deploy, "environment_site", lambda s, e: SimpleNamespace(store=lambda: store))
    engine = lock_engine()
    try:
        EnvironmentLocks(engine).acquire(service.name, "dev", "run-1", "release_sample-app", is_stale=lambda holder: False)
    finally:
        engine.dispose()
    task.bind_environment()
    task.__dict__["hook"] = SimpleNamespace(core_v1_client=pods)  # after bind_environment, which drops a cached hook

    assert task.take_over({"run_id": "run-1"}) == 1
    selector = "deployflow.io/role=deployer,deployflow.io/service=sample-app,deployflow.io/environment=dev"
    assert pods.calls == [
        ("list", api.namespace, selector),
        ("delete", "deployer-sample-app-shift-try1", api.namespace, 10),  # SIGTERM, killed after 10 s
        ("delete", "deployer-sample-app-prepare-old", api.namespace, 10),  # finished and kept: removed as found
        ("list", api.namespace, selector),  # none left: its own pod may start
    ]
    assert pods.token_at_delete == [1, 1]  # fenced off before it was stopped: its last writes refused
    assert task.labels["deployflow.io/environment"] == "dev"  # what the next retry finds this one's pod by
    assert task.take_over({"run_id": "run-1"}) == 2  # each step a newer token
    with pytest.raises(AirflowFailException, match="^run run-2 does not hold the lock of sample-app in dev"):
        task.take_over({"run_id": "run-2"})
