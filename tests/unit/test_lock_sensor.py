"""The environment lock as resolve takes it on each poke (``lock.take_in_turn``), against a SQLite ledger file, the
Dag runs' states faked where the Task SDK reads them: it takes a free lock, keeps it on a retry, waits visibly behind
a live run, takes over from a run that has ended or is gone, and never waits on another environment. The record
task's release never raises."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
from airflow.sdk.execution_time.comms import DagRunResult, DagRunStateResult, ErrorResponse
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from airflow.utils.state import TaskInstanceState

from deployflow.airflow import lock
from deployflow.airflow.lock import release_environment_lock, take_in_turn
from deployflow.airflow.resolve import ResolveReleaseOperator
from deployflow.catalog import parse_service
from deployflow.ledger import engine_for
from deployflow.ledger.locks import EnvironmentLocks, create_locks_table

if TYPE_CHECKING:
    from airflow.sdk.api.datamodels._generated import DagRunState

DAG = "release_shop"
LOG = logging.getLogger("test_lock_sensor")


def not_found(dag_id: str, run_id: str) -> AirflowRuntimeError:
    """What the supervisor sends back when the API server answers 404 (supervisor.handle_requests)."""
    message = f"Dag run with dag_id '{dag_id}' and run_id '{run_id}' was not found"
    return AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={
        "status_code": 404, "message": "Server returned error", "detail": {"detail": {"reason": "not_found", "message": message}}}))


class Airflow:
    """The Dag runs the API server knows, by run id (a state, or an error to raise), and what it was asked."""

    def __init__(self) -> None:
        self.states: dict[str, str | Exception] = {}
        self.asked: list[tuple[str, str]] = []

        # Runs whose resolve task (it takes the lock) has not finished: its state, the environment their conf names (None: none).
        self.lock_states: dict[str, str | None] = {}
        self.wants: dict[str, str | None] = {}
        self.task_states_error: Exception | None = None

    def get_dagrun_state(self, dag_id: str, run_id: str) -> DagRunState:
        self.asked.append((dag_id, run_id))
        state = self.states.get(run_id) or not_found(dag_id, run_id)
        if isinstance(state, Exception):
            raise state
        return DagRunStateResult(state=state).state  # what the real one returns: the enum (str() of it is not its value)

    def get_task_states(self, dag_id: str, task_ids: list[str]) -> dict[str, dict[str, object]]:
        """Every run of the DAG with its resolve task's state (resolve takes the lock), as the API server's /task-instances/states answers."""
        if self.task_states_error:
            raise self.task_states_error
        assert task_ids == ["resolve"], task_ids  # the task that takes the lock
        done = {run: {"resolve": "success"} for run in self.states if run not in self.lock_states}
        return {**done, **{run: {"resolve": state and TaskInstanceState(state)} for run, state in self.lock_states.items()}}

    def fetch_dag_run(self, dag_id: str, run_id: str) -> DagRunResult:
        state = self.states[run_id]
        conf = {} if self.wants.get(run_id) is None else {"environment": self.wants[run_id]}
        after = TRIGGERED[run_id]
        return DagRunResult(dag_id=dag_id, run_id=run_id, logical_date=None, data_interval_start=None, data_interval_end=None,
                            run_after=after, start_date=after, end_date=None, run_type="manual", state=state, conf=conf,
                            consumed_asset_events=[], partition_key=None)


@pytest.fixture
def runs(tmp_path, monkeypatch) -> Airflow:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    monkeypatch.setenv("DEPLOYFLOW_LEDGER_URL", url)  # no Airflow connection here: the ledger's next choice
    engine = engine_for(url)
    with engine.begin() as conn:
        create_locks_table(conn)  # until the ledger's migration v4 makes it
    engine.dispose()
    airflow = Airflow()
    monkeypatch.setattr(RuntimeTaskInstance, "get_dagrun_state", staticmethod(airflow.get_dagrun_state))
    monkeypatch.setattr(RuntimeTaskInstance, "get_task_states", staticmethod(airflow.get_task_states))
    monkeypatch.setattr(lock, "fetch_dag_run", airflow.fetch_dag_run)
    return airflow


@pytest.fixture
def locks(runs, tmp_path) -> Iterator[EnvironmentLocks]:
    engine = engine_for(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield EnvironmentLocks(engine)
    engine.dispose()


TRIGGERED: dict[str, datetime] = {}  # each run's run_after: the order the runs were triggered in (first poke, unless set)


def poke(run_id: str, environment: str = "prod") -> bool:
    after = TRIGGERED.setdefault(run_id, datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc) + timedelta(seconds=len(TRIGGERED)))
    context = {"run_id": run_id, "ti": SimpleNamespace(dag_id=DAG), "dag_run": SimpleNamespace(run_after=after)}
    return take_in_turn("shop", environment, context, "resolve", LOG)


@pytest.fixture(autouse=True)
def fresh_triggers() -> Iterator[None]:
    TRIGGERED.clear()
    yield
    TRIGGERED.clear()


def test_runs_take_an_environment_in_the_order_they_were_triggered(runs, caplog):
    runs.states.update({"manual__a": "running", "manual__b": "running", "manual__c": "running"})
    TRIGGERED.update({name: datetime(2026, 12, 1, 9, i, tzinfo=timezone.utc) for i, name in enumerate(("manual__a", "manual__b", "manual__c"))})
    assert poke("manual__a") is True
    with caplog.at_level(logging.INFO):
        assert poke("manual__c") is False  # c pokes before b, but b was triggered first
        assert poke("manual__b") is False
    assert release_environment_lock("shop", "prod", "manual__a", LOG)
    with caplog.at_level(logging.INFO):
        assert poke("manual__c") is False
    assert "prod: waiting behind run manual__b" in caplog.text
    assert poke("manual__b") is True
    assert release_environment_lock("shop", "prod", "manual__b", LOG)
    assert poke("manual__c") is True


def at(minute: int) -> datetime:
    return datetime(2026, 12, 1, 9, minute, tzinfo=timezone.utc)


def test_a_run_triggered_second_whose_lock_task_runs_first_waits_for_the_first(runs, caplog, locks):
    # Both runs start; b's resolve happens to run before a's (seen in CI: b took prod 4 s after its trigger).
    runs.states.update({"manual__a": "running", "manual__b": "running"})
    TRIGGERED.update({"manual__a": at(0), "manual__b": at(1)})
    runs.lock_states["manual__a"] = "scheduled"
    runs.wants["manual__a"] = "prod"
    with caplog.at_level(logging.INFO):
        assert poke("manual__b") is False
    assert locks.holder("shop", "prod") is None
    assert ("prod: waiting for run manual__a (triggered at 2026-12-01T09:00:00.000000Z), which was triggered first and "
            "has not asked for it yet") in caplog.text
    runs.lock_states["manual__a"] = "running"  # a's resolve runs now: it is not b's to wait for
    assert poke("manual__a") is True
    del runs.lock_states["manual__a"]  # its resolve succeeded
    assert poke("manual__b") is False
    assert release_environment_lock("shop", "prod", "manual__a", LOG)
    assert poke("manual__b") is True


@pytest.mark.parametrize("why, change", [
    ("its conf names another environment", lambda runs: runs.wants.update({"manual__a": "dev"})),
    ("it was triggered after", lambda runs: TRIGGERED.update({"manual__a": at(2)})),
    ("its run is queued, not started (it could wait on a run slot)", lambda runs: runs.states.update({"manual__a": "queued"})),
    ("its run has ended", lambda runs: runs.states.update({"manual__a": "failed"})),
    ("its resolve will never run", lambda runs: runs.lock_states.update({"manual__a": "upstream_failed"})),
    ("the runs cannot be read", lambda runs: setattr(runs, "task_states_error", AirflowRuntimeError(ErrorResponse(
        error=ErrorType.API_SERVER_ERROR, detail={"status_code": 503, "message": "unavailable"})))),
])
def test_a_run_not_yet_at_its_lock_is_not_waited_for_when(runs, why, change):
    runs.states.update({"manual__a": "running", "manual__b": "running"})
    TRIGGERED.update({"manual__a": at(0), "manual__b": at(1)})
    runs.lock_states["manual__a"] = None
    change(runs)
    assert poke("manual__b") is True, why


def test_a_nightly_run_not_yet_at_its_lock_is_waited_for_whatever_environment(runs):
    # Its conf names none: its resolve task takes the nightly's environment, which may be this one.
    runs.states.update({"scheduled__a": "running", "manual__b": "running"})
    TRIGGERED.update({"scheduled__a": at(0), "manual__b": at(1)})
    runs.lock_states["scheduled__a"] = None
    assert poke("manual__b", "dev") is False


def test_a_waiter_ahead_whose_run_has_ended_is_dropped(runs, caplog):
    runs.states.update({"manual__a": "running", "manual__b": "failed", "manual__c": "running"})
    TRIGGERED.update({name: datetime(2026, 12, 1, 9, i, tzinfo=timezone.utc) for i, name in enumerate(("manual__a", "manual__b", "manual__c"))})
    assert poke("manual__a") is True
    assert poke("manual__b") is False  # b waits, then its run fails without a record
    assert release_environment_lock("shop", "prod", "manual__a", LOG)
    with caplog.at_level(logging.WARNING):
        assert poke("manual__c") is True
    assert "run manual__b of release_shop no longer waits for prod of shop: dropped from the queue" in caplog.text


def test_resolve_waits_for_it_in_reschedule_mode_every_30_s():
    shop = parse_service({"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"dev": {"port": 18101}}})
    resolve = ResolveReleaseOperator(task_id="resolve", service=shop)
    assert (resolve.mode, resolve.poke_interval) == ("reschedule", 30)
    assert ResolveReleaseOperator(task_id="resolve", service=shop, mode="poke").mode == "poke"


def test_a_free_lock_is_taken_and_a_retry_keeps_it_without_asking_airflow(runs, locks):
    assert poke("manual__a") is True
    assert poke("manual__a") is True  # the next try of the same run
    assert locks.holder("shop", "prod").run_id == "manual__a"
    assert runs.asked == []


def test_a_release_waits_behind_a_running_one_and_says_which(runs, caplog, locks):
    runs.states["manual__a"] = "running"
    assert poke("manual__a") is True
    caplog.set_level(logging.INFO)
    assert poke("manual__b") is False
    assert runs.asked == [(DAG, "manual__a")]
    [said] = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    taken = locks.holder("shop", "prod").since().astimezone(timezone.utc)
    assert said.startswith(f"prod is held by run manual__a (since {taken:%Y-%m-%d %H:%M:%S} UTC, ")
    assert said.endswith(" s ago); waiting")
    assert 0 <= int(said.rsplit(", ", 1)[1].split(" s ago")[0]) < 60


def test_a_queued_holder_is_waited_for_too(runs):
    runs.states["manual__a"] = "queued"
    poke("manual__a")
    assert poke("manual__b") is False


@pytest.mark.parametrize("state", ["success", "failed"])
def test_a_holder_whose_run_has_ended_is_taken_over(runs, caplog, state, locks):
    runs.states["manual__a"] = state
    poke("manual__a")
    caplog.set_level(logging.WARNING)
    assert poke("manual__b") is True
    assert locks.holder("shop", "prod").run_id == "manual__b"
    assert any(f"run manual__a of {DAG} holds the lock but is {state}: taking the lock over" in r.getMessage() for r in caplog.records)


def test_a_holder_whose_run_is_gone_is_taken_over(runs, caplog, locks):
    poke("manual__deleted")  # no such run now: the API server answers 404
    caplog.set_level(logging.WARNING)
    assert poke("manual__b") is True
    assert locks.holder("shop", "prod").run_id == "manual__b"
    assert any("run manual__deleted of release_shop holds the lock but does not exist (deleted?)" in r.getMessage()
               for r in caplog.records)


@pytest.mark.parametrize("error", [
    AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": 503, "message": "unavailable"})),
    AirflowRuntimeError(ErrorResponse(error=ErrorType.API_SERVER_ERROR, detail={"status_code": None, "message": "ConnectError"})),
])
def test_a_holder_whose_state_cannot_be_read_is_waited_for(runs, error, locks):
    runs.states["manual__a"] = error
    poke("manual__a")
    assert poke("manual__b") is False
    assert locks.holder("shop", "prod").run_id == "manual__a"


def test_another_environment_is_not_blocked(runs):
    runs.states["manual__a"] = runs.states["manual__b"] = "running"
    assert poke("manual__a", "prod") is True
    assert poke("manual__b", "dev") is True
    assert poke("manual__c", "dev") is False


def test_the_record_task_releases_its_own_lock_only_and_the_waiting_release_goes_ahead(runs, caplog):
    runs.states["manual__a"] = runs.states["manual__b"] = "running"
    poke("manual__a")
    assert poke("manual__b") is False
    assert release_environment_lock("shop", "prod", "manual__b", LOG) is False
    assert release_environment_lock("shop", "prod", "manual__a", LOG) is True
    assert release_environment_lock("shop", "prod", "manual__a", LOG) is False  # a retried record task
    assert poke("manual__b") is True


def test_a_release_that_fails_logs_a_warning_and_never_raises(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("DEPLOYFLOW_LEDGER_URL", "mysql://nowhere/ledger")
    caplog.set_level(logging.WARNING)
    assert release_environment_lock("shop", "prod", "manual__a", LOG) is False
    [warning] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "could not release the lock of shop in prod held by run manual__a (ValueError: ledger URL scheme 'mysql'" in (
        warning.getMessage())


def test_a_lock_taken_long_ago_says_how_long(runs, caplog, locks):
    runs.states["manual__a"] = "running"
    hour_ago = datetime.now(timezone.utc) - timedelta(hours=1)
    EnvironmentLocks(locks.engine, clock=lambda: hour_ago).acquire("shop", "prod", "manual__a", DAG, is_stale=lambda h: False)
    caplog.set_level(logging.INFO)
    assert poke("manual__b") is False
    [said] = [r.getMessage() for r in caplog.records if "waiting" in r.getMessage()]
    assert f"(since {hour_ago:%Y-%m-%d %H:%M:%S} UTC, 360" in said


def test_the_holder_keeps_its_lock_on_a_retry_even_behind_an_earlier_waiter(runs):
    runs.states.update({"manual__a": "running", "manual__b": "running"})
    TRIGGERED.update({"manual__a": datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc),
                      "manual__b": datetime(2026, 12, 1, 9, 1, tzinfo=timezone.utc)})
    assert poke("manual__b") is True  # b's resolve ran first
    assert poke("manual__a") is False  # a, triggered earlier, now waits for b
    assert poke("manual__b") is True  # b's retry is not sent behind a: that would deadlock both
