"""scripts/bench_release.py's pure parts: a task's phases from its log events, the critical path, net core-seconds.
The event lists are copied from real Airflow 3 task logs of release_sample-app (e2e stack, 2026-12-06)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"
sys.path.insert(0, str(SCRIPTS))
_spec = importlib.util.spec_from_file_location("bench_release", SCRIPTS / "bench_release.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def at(clock: str) -> str:
    return f"2026-12-06T{clock}Z"


def process(pre: str, loaded: str, parsed: str, endgroup: str, own: list[tuple[str, str]], post: str, end: str,
            parse_ms: int = 431) -> list[dict]:
    """One task process's log: Pre Execute, the startup parse, execute()'s lines, Post Execute."""
    return [
        {"timestamp": at(pre), "event": "::group::Pre Execute"},
        {"timestamp": at(loaded), "event": "DAG bundles loaded: dags-folder, catalog"},
        {"timestamp": at(loaded), "event": "Filling up the DagBag from /tmp/x/catalog_dags/release_sample-app.py"},
        {"timestamp": at(parsed), "event": "Worker startup parse complete", "dag_file_parse_ms": parse_ms},
        {"timestamp": at(endgroup), "event": "::endgroup::"},
        *({"timestamp": at(t), "event": text} for t, text in own),
        {"timestamp": at(post), "event": "::group::Post Execute"},
        {"timestamp": at(end), "event": "::endgroup::"},
    ]


def ti(state: str, try_number: int, scheduled: str | None, queued: str | None, start: str | None, end: str | None):
    return {"state": state, "try_number": try_number, "scheduled_when": scheduled and at(scheduled),
            "queued_when": queued and at(queued), "start_date": start and at(start), "end_date": end and at(end)}


LOCK = process("22:55:28.657858", "22:55:28.807756", "22:55:29.243063", "22:55:29.296713",
               [("22:55:29.382719", "lock of sample-app in prod taken by run manual__2026-12-06T22:55:26")],
               "22:55:29.390754", "22:55:29.417558")


def test_a_plain_task_is_split_at_its_parse_end_and_post_execute():
    lock = ti("success", 1, "22:55:28.536064", "22:55:28.550054", "22:55:28.596992", "22:55:29.391079")
    row = bench.split_phases([lock], {1: LOCK}, bench.ready_at(lock, None, 0.0))
    assert row["ready->queued"] == pytest.approx(0.013990, abs=1e-5)
    assert row["queued->start"] == pytest.approx(0.046938, abs=1e-5)
    assert row["start+parse"] == pytest.approx(29.296713 - 28.596992, abs=1e-5)  # start_date to the endgroup
    assert row["work"] == pytest.approx(29.390754 - 29.296713, abs=1e-5)
    assert row["hand-off"] == pytest.approx(29.391079 - 29.390754, abs=1e-5)
    assert row["between"] == pytest.approx(0.0, abs=1e-6)
    assert row["total"] == pytest.approx(29.391079 - 28.536064, abs=1e-5)
    assert row["airflow"] == pytest.approx(row["total"] - row["work"])
    assert (row["processes"], row["parse_ms"], row["note"]) == (1, [431], "")


HEALTH = [  # deferred once: two processes in one try, the trigger's run in between (its log merged in)
    *process("22:56:07.061074", "22:56:07.313877", "22:56:07.695058", "22:56:07.757388",
             [("22:56:07.757959", "checking /health, /ready, /live on http://127.0.0.1:20751")],
             "22:56:07.758290", "22:56:07.810890", parse_ms=374),
    {"timestamp": at("22:56:07.758479"), "event": "Pausing task as DEFERRED. "},
    {"timestamp": at("22:56:09.911351"),
     "event": "trigger release_sample-app/manual__2026-12-06T22:55:26.094849+00:00/health/-1/1 (ID 1) starting"},
    {"timestamp": at("22:56:10.995149"), "event": "Trigger fired event"},
    {"timestamp": at("22:56:10.996245"), "event": "trigger completed"},
    *process("22:56:12.132571", "22:56:12.347858", "22:56:12.951097", "22:56:13.041163",
             [("22:56:13.041530", "healthy after 3 rounds in 1.1 s")], "22:56:13.041676", "22:56:13.068178",
             parse_ms=597),
]


def test_a_deferred_task_counts_both_executes_and_its_trigger_as_work_and_the_waits_as_airflow():
    # Airflow rewrote scheduled/queued when it resumed the task: later than its start, so ready is the upstream's end
    health = ti("success", 1, "22:56:11.935275", "22:56:12.017528", "22:56:06.985042", "22:56:13.042132")
    ready = bench.ready_at(health, bench.stamp(at("22:56:06.818518")), 0.0)
    assert ready == bench.stamp(at("22:56:06.818518"))
    row = bench.split_phases([health], {1: HEALTH}, ready)
    execute = (7.758290 - 7.757388) + (13.041676 - 13.041163)
    assert row["work"] == pytest.approx(execute + (10.995149 - 9.911351), abs=1e-5)
    assert row["start+parse"] == pytest.approx((7.757388 - 6.985042) + (13.041163 - 12.132571), abs=1e-5)
    assert row["ready->queued"] == 0.0  # queued_when is the resume's: not usable for the first process
    assert row["queued->start"] == pytest.approx(6.985042 - 6.818518, abs=1e-5)
    assert (row["processes"], row["deferrals"], row["parse_ms"]) == (2, 1, [374, 597])
    # the first process's exit and the wait for the triggerer, then the wait to be resumed: Airflow's
    assert row["between"] == pytest.approx((9.911351 - 7.758290) + (12.132571 - 10.995149), abs=1e-5)
    assert sum(row[p] for p in bench.PHASES[:6]) == pytest.approx(row["total"])


def test_a_task_skipped_by_the_scheduler_started_no_process_and_costs_nothing():
    rollback = ti("skipped", 0, None, None, "22:56:22.407452", "22:56:22.407452")
    row = bench.split_phases([rollback], {}, bench.ready_at(rollback, bench.stamp(at("22:56:22.052367")), 0.0))
    assert row["note"] == bench.NO_PROCESS
    assert all(row[p] == 0.0 for p in bench.PHASES) and row["processes"] == 0


def test_a_task_that_started_a_process_only_to_skip_shows_its_costs():
    analysis = ti("skipped", 1, "22:56:16.710511", "22:56:16.737467", "22:56:16.808499", "22:56:18.613274")
    events = process("22:56:16.878000", "22:56:17.400000", "22:56:18.396000", "22:56:18.540000",
                     [("22:56:18.560000", "no analysis in dev: skipped")], "22:56:18.590000", "22:56:18.612000",
                     parse_ms=996)
    row = bench.split_phases([analysis], {1: events}, bench.ready_at(analysis, None, 0.0))
    assert row["note"] == "skipped, after starting a process"
    assert row["work"] == pytest.approx(0.05, abs=1e-5)
    assert row["airflow"] == pytest.approx(18.613274 - 16.710511 - 0.05, abs=1e-5)


def test_a_task_with_two_tries_sums_both_processes_and_counts_the_retry_wait_as_airflow():
    first = ti("failed", 1, "22:12:24.800000", "22:12:24.850000", "22:12:24.900000", "22:12:28.300000")
    second = ti("success", 2, "22:12:38.500000", "22:12:38.550000", "22:12:38.600000", "22:12:53.520000")
    logs = {
        1: process("22:12:24.961730", "22:12:25.124139", "22:12:25.577450", "22:12:25.772252",
                   [("22:12:28.252423", "Task failed with exception")], "22:12:28.254454", "22:12:28.308990"),
        2: process("22:12:38.633521", "22:12:38.769534", "22:12:39.063851", "22:12:39.248395",
                   [("22:12:53.198959", '{"step": "promote", "ok": true}')], "22:12:53.512250", "22:12:53.564579"),
    }
    row = bench.split_phases([second, first], logs, bench.ready_at(first, None, 0.0))
    assert row["tries"] == 2 and row["processes"] == 2
    assert row["work"] == pytest.approx((28.254454 - 25.772252) + (53.512250 - 39.248395), abs=1e-5)
    assert row["queued->start"] == pytest.approx(0.05, abs=1e-5)  # the first try's
    assert row["hand-off"] == pytest.approx(53.52 - 53.512250, abs=1e-5)  # the last try's
    assert row["between"] == pytest.approx(38.633521 - 28.254454, abs=1e-5)  # the failed try's exit, the retry delay
    assert row["total"] == pytest.approx(53.52 - 24.8, abs=1e-5)


def test_a_task_that_has_not_finished_is_named_so():
    row = bench.split_phases([ti("running", 1, "22:00:00.0", "22:00:00.1", "22:00:00.2", None)], {1: LOCK}, 0.0)
    assert row["note"] == "not finished (running)" and row["total"] == 0.0


TASKS = [
    {"task_id": "build", "downstream_task_ids": ["test.unit", "test.integration"]},
    {"task_id": "test.unit", "downstream_task_ids": ["coverage_gate"]},
    {"task_id": "test.integration", "downstream_task_ids": ["coverage_gate"]},
    {"task_id": "coverage_gate", "downstream_task_ids": ["deploy", "rollback"]},
    {"task_id": "deploy", "downstream_task_ids": ["record"]},
    {"task_id": "rollback", "downstream_task_ids": ["record"]},
    {"task_id": "record", "downstream_task_ids": []},
]


def test_upstreams_are_read_from_the_downstream_lists():
    assert bench.upstreams(TASKS) == {"build": [], "test.unit": ["build"], "test.integration": ["build"],
                                      "coverage_gate": ["test.unit", "test.integration"],
                                      "deploy": ["coverage_gate"], "rollback": ["coverage_gate"],
                                      "record": ["deploy", "rollback"]}


def test_the_critical_path_follows_the_upstream_that_finished_last():
    ends = {"build": 2.0, "test.unit": 6.0, "test.integration": 21.0, "coverage_gate": 23.0, "deploy": 30.0,
            "rollback": 30.5, "record": 32.0}  # rollback skipped after deploy: it finished last, so it is on the path
    path = bench.critical_path(bench.upstreams(TASKS), ends)
    assert path == ["build", "test.integration", "coverage_gate", "rollback", "record"]


def test_the_critical_path_breaks_ties_by_work_then_name_and_ignores_tasks_without_an_end():
    upstream = bench.upstreams(TASKS)
    ends = {"build": 2.0, "test.unit": 21.0, "test.integration": 21.0, "coverage_gate": 23.0, "deploy": 30.0,
            "rollback": None, "record": 32.0}
    assert bench.critical_path(upstream, ends, "record", {"test.unit": 3.0, "test.integration": 19.0}) == [
        "build", "test.integration", "coverage_gate", "deploy", "record"]
    assert bench.critical_path(upstream, ends, "record")[1] == "test.unit"  # no work known: the task id decides
    assert bench.critical_path(upstream, ends, "coverage_gate")[-1] == "coverage_gate"


def test_net_core_seconds_subtract_the_idle_stacks_rate_over_the_wall():
    assert bench.net_core_seconds(busy=90.0, wall=60.0, idle_cores=0.5) == pytest.approx(60.0)
    assert bench.net_core_seconds(busy=10.0, wall=60.0, idle_cores=0.0) == 10.0


def test_the_median_release_is_the_lower_middle_one():
    assert bench.median_index([70.0, 60.0, 80.0]) == 0
    assert bench.median_index([70.0, 60.0]) == 1
