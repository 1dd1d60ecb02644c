"""One release per environment at a time, not per service: a dev release and a prod release of one service
run at once; two prod releases do not, the second waiting visibly in its lock task for the first."""

from __future__ import annotations

import pytest

from tests.e2e.harness import DAG_ID, all_tries_text, finished

pytestmark = pytest.mark.timeout(1500)


def span(airflow, run_id: str) -> tuple[str, str]:
    """From the moment the run held its environment (its resolve done: it takes the lock) to the end of its record task."""
    tis = {ti["task_id"]: ti for ti in airflow.task_instances(DAG_ID, run_id)}
    return tis["resolve"]["end_date"], tis["record"]["end_date"]


def test_dev_and_prod_overlap_and_two_prod_releases_do_not(airflow, airflow_home):
    # force: each run takes its lock and deploys, even where main is live already (an earlier module).
    runs = {name: airflow.trigger(DAG_ID, {"environment": env, "git_ref": "main", "reason": f"lock test {name}",
                                           "force": True})["dag_run_id"]
            for name, env in (("dev", "dev"), ("prod-1", "prod"), ("prod-2", "prod"))}
    done = {name: finished(airflow, run_id) for name, run_id in runs.items()}
    for name, run in done.items():
        assert run["state"] == "success", (name, run["tasks"])
    spans = {name: span(airflow, run_id) for name, run_id in runs.items()}
    # A gate with nothing to ask (dev, and prod of the sample) was skipped by resolve: it never started a process.
    gates = {name: {ti["task_id"]: ti for ti in airflow.task_instances(DAG_ID, run_id)}["approve_deploy"]
             for name, run_id in runs.items()}
    assert {name: (g["state"], g["try_number"]) for name, g in gates.items()} == {name: ("skipped", 0) for name in runs}
    # The two prod releases: whichever took prod first held it to its end; the other started after.
    first, second = sorted(("prod-1", "prod-2"), key=lambda name: spans[name][0])
    # The first lets go in its record task, after its last deploy step: the second holds prod only after that.
    record = {ti["task_id"]: ti for ti in airflow.task_instances(DAG_ID, runs[first])}["record"]
    assert spans[second][0] >= record["start_date"], (spans, record["start_date"])
    # Its resolve waited, naming the first: as the holder, or (both resolves ran at once) as the run ahead in line.
    waited = all_tries_text(airflow_home, runs[second], "resolve")
    assert any(f"{said} {runs[first]}" in waited for said in ("prod is held by run", "waiting behind run")), waited
    # dev held its own environment while the first prod release held prod.
    dev, prod = spans["dev"], spans[first]
    assert max(dev[0], prod[0]) < min(dev[1], prod[1]), spans
    assert "held by run" not in all_tries_text(airflow_home, runs["dev"], "resolve")
