"""The first task refuses a bad request, and the record task still writes who asked to the ledger.

Airflow cannot refuse every bad conf before a run exists (an unknown key, or a manual run of a nightly
service that names no environment: see tests/dags/test_trigger_conf.py); the resolve task refuses those,
and the ledger line names the user who triggered the run, not "?".
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowRescheduleException, AirflowSensorTimeout

from deployflow.ledger import Ledger, default_url
from deployflow.airflow import lock
from deployflow.airflow.lock import release_environment_lock, take_in_turn
from deployflow.airflow.record import ReleaseRecordOperator, remember_failure
from deployflow.airflow.resolve import ResolveReleaseOperator
from deployflow.catalog import parse_service
from deployflow.outcomes import Outcome

@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch) -> None:
    """A state directory of the test's own: resolve takes the environment's lock in its ledger."""
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))


SHOP = parse_service({
    "name": "shop", "source": {"repo": "/srv/shop", "default_ref": "main"},
    "environments": {"dev": {"port": 18101}, "prod": {"port": 18103}},
    "nightly": {"cron": "0 2 * * *", "environment": "dev"},
})


class RunTI:
    """A task instance of one run: XComs pushed by any task, pulled back by task id and key."""

    def __init__(self) -> None:
        self.pushed: dict[tuple[str, str], object] = {}
        self.task_id = "resolve"
        self.dag_id = "release_shop"

    def get_first_reschedule_date(self, context: dict) -> None:  # resolve, a sensor, asks: its first poke
        return None

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[(self.task_id, key)] = value

    def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
        return self.pushed.get((task_ids, key))


def context(ti: RunTI, params: dict, *, user: str | None = "alice", run_type: str = "manual") -> dict:
    dag_run = SimpleNamespace(triggering_user_name=user, run_type=run_type, start_date=datetime.now(timezone.utc))
    return {"ti": ti, "dag_run": dag_run, "params": params, "run_id": "manual__1"}


REFUSED = [
    ({"environment": None, "git_ref": "main", "strategy": "catalog", "reason": ""},
     "params.environment: is required (only the nightly schedule may leave it out); valid values are 'dev', 'prod'"),
    # The trigger form's default of a nightly service's environment, and of an optional field (null).
    ({"environment": "", "git_ref": "main", "strategy": "catalog", "reason": None},
     "params.environment: is required (only the nightly schedule may leave it out); valid values are 'dev', 'prod'"),
    ({"environment": "dev", "colour": "blue"},
     "params.colour: unknown parameter; valid ones are environment, git_ref, strategy, reason, promote_from, rollback_to, freeze_override, force"),
    ({"environment": "dev", "reason": "see {{ conn.billing_db.password }}"},
     "params.reason: contains '{{'; a reason is data, never a template"),
    ({"environment": "dev", "reason": "ok\u202e"},
     "params.reason: contains U+202E (RIGHT-TO-LEFT OVERRIDE, category Cf); a reason is one line of visible text"),
]


@pytest.mark.parametrize(("params", "error"), REFUSED)
def test_a_refused_request_fails_resolve_and_the_ledger_names_who_asked(tmp_path, monkeypatch, params, error):
    monkeypatch.setenv("DEPLOYFLOW_STATE", str(tmp_path))
    ti = RunTI()
    with pytest.raises(AirflowFailException) as caught:
        ResolveReleaseOperator(task_id="resolve", service=SHOP).execute(context(ti, params))
    assert str(caught.value) == error
    ti.task_id = "record"
    with pytest.raises(AirflowFailException, match=f"^release of shop: refused: {error[:20]}"):
        ReleaseRecordOperator(task_id="record", service=SHOP).execute(context(ti, params))
    [entry] = Ledger(default_url(tmp_path)).entries()
    assert (entry.service, entry.requested_by, entry.outcome, entry.failure) == ("shop", "alice", Outcome.REFUSED, error)
    assert (entry.environment, entry.strategy) == ("none", "none")  # never given: not '?', not an environment


@pytest.mark.parametrize("defaults", [  # the DAG's defaults (a form's empty environment, null reason), and older ones
    {"environment": "", "git_ref": "main", "strategy": "catalog", "reason": None, "promote_from": None},
    {"environment": None, "git_ref": "main", "strategy": "catalog", "reason": ""},
])
def test_the_nightly_schedule_resolves_to_the_nightly_environment(defaults):
    ti = RunTI()
    params = dict(defaults)
    request = ResolveReleaseOperator(task_id="resolve", service=SHOP).execute(context(ti, params, user=None, run_type="scheduled"))
    assert (request["environment"], request["strategy"], request["requested_by"]) == ("dev", "rolling", "scheduled")
    assert ti.pushed[("resolve", "note")] == "dev · rolling · main · by scheduled"


def test_resolve_leaves_the_runs_note_with_the_resolved_strategy():
    ti = RunTI()
    params = {"environment": "prod", "git_ref": "v1.2", "strategy": "catalog", "reason": "fix *checkout*"}
    ResolveReleaseOperator(task_id="resolve", service=SHOP).execute(context(ti, params))
    assert ti.pushed[("resolve", "note")] == "prod · blue-green · v1.2 · by alice: fix \\*checkout\\*"


# ---- resolve takes the environment's lock ------------------------------------------------------------------------

def hold(environment: str, run_id: str = "manual__0") -> None:
    """Another run of shop, triggered earlier, takes ``environment``'s lock."""
    earlier = {"run_id": run_id, "ti": SimpleNamespace(dag_id="release_shop"),
               "dag_run": SimpleNamespace(run_after=datetime(2026, 12, 1, tzinfo=timezone.utc))}
    assert take_in_turn("shop", environment, earlier, "resolve", logging.getLogger("test"))


@pytest.fixture
def held(monkeypatch) -> None:
    """prod is held by a live run (its state is not read here: a holder whose state cannot be read is waited for)."""
    monkeypatch.setattr(lock, "holder_is_stale", lambda holder, log: False)
    hold("prod")


def test_resolve_waits_while_another_run_holds_the_environment_and_resolves_once_it_is_let_go(held, caplog, monkeypatch):
    monkeypatch.setattr(ResolveReleaseOperator, "log", property(lambda self: logging.getLogger("test")))  # as caplog sees it
    ti = RunTI()
    params = {"environment": "prod", "git_ref": "v1.2", "strategy": "catalog", "reason": "fix"}
    resolve, run = ResolveReleaseOperator(task_id="resolve", service=SHOP), context(ti, params)
    with caplog.at_level(logging.INFO), pytest.raises(AirflowRescheduleException):  # reschedule mode: no slot held
        resolve.execute(run)
    assert "prod is held by run manual__0" in caplog.text
    # Nothing decided against what is live, no note, no skip, no channel told: only the request, for the record.
    assert set(ti.pushed) == {("resolve", "request")}
    assert ti.pushed[("resolve", "request")]["environment"] == "prod"
    assert release_environment_lock("shop", "prod", "manual__0", logging.getLogger("test"))
    assert resolve.execute(run)["environment"] == "prod"  # the next poke, of the same run
    assert ti.pushed[("resolve", "note")] == "prod · blue-green · v1.2 · by alice: fix"


def test_a_bad_request_is_refused_at_once_while_the_environment_is_held(held):
    ti = RunTI()
    with pytest.raises(AirflowFailException, match="params.colour: unknown parameter"):
        ResolveReleaseOperator(task_id="resolve", service=SHOP).execute(context(ti, {"environment": "prod", "colour": "blue"}))
    assert set(ti.pushed) == {("resolve", "refused")}


def test_another_environment_is_resolved_while_prod_is_held(held):
    assert ResolveReleaseOperator(task_id="resolve", service=SHOP).execute(context(RunTI(), {"environment": "dev"}))["environment"] == "dev"


def test_a_release_that_timed_out_waiting_is_recorded_with_its_environment_and_why(held, tmp_path):
    ti = RunTI()
    params = {"environment": "prod", "git_ref": "v1.2", "strategy": "catalog", "reason": "fix"}
    resolve = ResolveReleaseOperator(task_id="resolve", service=SHOP, timeout=0)
    with pytest.raises(AirflowSensorTimeout) as timed_out:
        resolve.execute(context(ti, params))
    remember_failure({"ti": ti, "exception": timed_out.value})  # resolve's on_failure_callback
    ti.task_id = "record"
    with pytest.raises(AirflowFailException, match="^release of shop: failed before deploy"):
        ReleaseRecordOperator(task_id="record", service=SHOP).execute(context(ti, params))
    [entry] = Ledger(default_url(tmp_path)).entries()
    assert (entry.environment, entry.requested_by, entry.outcome) == ("prod", "alice", Outcome.FAILED_BEFORE_DEPLOY)
    assert entry.failure.startswith("resolve failed: Sensor has timed out"), entry.failure
