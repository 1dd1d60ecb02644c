"""The first task refuses a bad request, and the record task still writes who asked to the ledger.

Airflow cannot refuse every bad conf before a run exists (an unknown key, or a manual run of a nightly
service that names no environment: see tests/dags/test_trigger_conf.py); the resolve task refuses those,
and the ledger line names the user who triggered the run, not "?".
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from deployflow.ledger import Ledger, default_url
from deployflow.airflow.record import ReleaseRecordOperator
from deployflow.airflow.operators import ResolveReleaseOperator
from deployflow.catalog import parse_service
from deployflow.outcomes import Outcome

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
    assert ti.pushed == {("resolve", "note"): "dev · rolling · main · by scheduled"}


def test_resolve_leaves_the_runs_note_with_the_resolved_strategy():
    ti = RunTI()
    params = {"environment": "prod", "git_ref": "v1.2", "strategy": "catalog", "reason": "fix *checkout*"}
    ResolveReleaseOperator(task_id="resolve", service=SHOP).execute(context(ti, params))
    assert ti.pushed == {("resolve", "note"): "prod · blue-green · v1.2 · by alice: fix \\*checkout\\*"}
