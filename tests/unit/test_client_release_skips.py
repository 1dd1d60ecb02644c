"""``python -m deployflow.client release`` on a release that does without steps (what ``make demo`` runs: a rolling
release to dev): the strategy, and why the analysis, the load, the approval gates and the post-promotion watch were
skipped, said as they skip and again at the end."""

from __future__ import annotations

import re

from tests.unit.test_client_release import RESOLVED, RUN_ID, follow, quick_polls, release, ti, xcom  # noqa: F401

DECIDED = {  # resolve's decided skips (deployflow.airflow.skips) of a rolling release to dev
    "analysis": "rolling has no canary step to judge",
    "load": "nothing to drive traffic for: no canary analysis (rolling has no canary step to judge), "
            "no post-promotion watch (off in dev)",
    "approve_deploy": "no approval asked for before deploy in dev",
    "approve_promote": "no approval asked for before promote in dev",
}
RAN = [ti("resolve", "success", 0.4), ti("shift", "success", 9.0), ti("promote", "success", 2.0),
       ti("rollback", "skipped", None)]


def rolling_to_dev(airflow) -> None:
    skipped = [ti(task_id, "skipped", None) for task_id in DECIDED]
    follow(airflow, "running", "success", tasks=[[RAN[0]], [*RAN, *skipped]])
    xcom(airflow, "resolve", {**RESOLVED, "strategy": "rolling", "skipped": DECIDED})
    xcom(airflow, "promote", {"version": "3f2a9c1d", "watch": {"skipped": "post_promotion is off in dev"}})


def test_each_step_resolve_skipped_says_why_as_it_skips(capsys, airflow, passwords):
    rolling_to_dev(airflow)
    ran = release(capsys, airflow, passwords)
    assert ran.code == 0 and "  resolved: dev with rolling (the catalog's), ref main\n" in ran.out
    said = {m.group(1): m.group(2) for m in re.finditer(r"\] (\w+) +skipped(?:: (.*))?\n", ran.out)}
    assert said == {**DECIDED, "rollback": None}  # the rollback skipped by Airflow's branch: nothing to say


def test_the_end_says_the_strategy_and_why_each_step_was_skipped(capsys, airflow, passwords):
    rolling_to_dev(airflow)
    out = release(capsys, airflow, passwords).out
    end = out[out.index(f"\nrelease_shop {RUN_ID}"):]
    assert end.splitlines()[1].endswith("(rolling)")
    assert all(re.search(rf"\n  {task_id} +{re.escape(why)}\n", end) for task_id, why in DECIDED.items()), end
    assert "\npost-promotion watch skipped: post_promotion is off in dev\n" in end


def test_a_release_waiting_for_its_environment_says_so(capsys, airflow, passwords):
    waiting = ti("resolve", "up_for_reschedule", None)  # resolve takes the environment's lock, waiting in reschedule mode
    follow(airflow, "running", "success", tasks=[[waiting], [RAN[0]], RAN])
    xcom(airflow, "resolve", RESOLVED)
    out = release(capsys, airflow, passwords).out
    assert re.search(r"\] resolve +up_for_reschedule: waiting for the environment, which another release holds", out), out
