"""tests/browser/scheduler_log.py: the wait for the scheduler to take a parked gate's worker exit."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from tests.browser.scheduler_log import EVENT, scheduler_log, wait_for_parked_exit

RUN = "manual__2026-12-02T04:34:28.140125+00:00"
TAKEN = "2026-12-02T04:34:39.504200Z [info     ] " + EVENT.format(
    dag_id="release_toy", task_id="approve_deploy", run_id=RUN, try_number=1) + " map_index=-1) [scheduler]\n"


def test_the_log_is_the_one_stack_writes_for_the_scheduler(tmp_path: Path):
    assert scheduler_log(tmp_path) == tmp_path / "logs" / "scheduler.out"


def test_it_returns_at_once_when_the_scheduler_has_taken_the_exit(tmp_path: Path):
    log = tmp_path / "scheduler.out"
    log.write_text("an earlier line\n" + TAKEN)
    assert wait_for_parked_exit(log, "release_toy", RUN, "approve_deploy", 1, timeout=5) < 1


def test_it_waits_for_a_line_written_later_even_when_cut_in_two_writes(tmp_path: Path):
    log = tmp_path / "scheduler.out"
    log.write_text("an earlier line\n")
    cut = len(TAKEN) // 2

    def scheduler() -> None:
        for part in (TAKEN[:cut], TAKEN[cut:]):
            time.sleep(0.3)
            with log.open("a") as out:
                out.write(part)

    writer = threading.Thread(target=scheduler)
    writer.start()
    waited = wait_for_parked_exit(log, "release_toy", RUN, "approve_deploy", 1, timeout=10, poll=0.05)
    writer.join()
    assert 0.5 < waited < 5


@pytest.mark.parametrize("other", [
    {"run_id": "manual__2026-12-02T04:40:00+00:00", "try_number": 1},  # another run's gate
    {"run_id": RUN, "try_number": 2},  # the same gate's second try
])
def test_another_gates_exit_is_not_this_ones(tmp_path: Path, other: dict):
    log = tmp_path / "scheduler.out"
    log.write_text(TAKEN)
    with pytest.raises(AssertionError, match="did not take parking exit 1 of approve_deploy"):
        wait_for_parked_exit(log, "release_toy", other["run_id"], "approve_deploy", other["try_number"], timeout=0.3, poll=0.05)


def test_a_gate_that_parks_again_is_waited_for_until_its_second_exit_is_taken(tmp_path: Path):
    log = tmp_path / "scheduler.out"
    log.write_text(TAKEN)  # the first park's exit only
    with pytest.raises(AssertionError, match="did not take parking exit 2 of approve_deploy"):
        wait_for_parked_exit(log, "release_toy", RUN, "approve_deploy", 1, parks=2, timeout=0.3, poll=0.05)
    with log.open("a") as out:
        out.write("the gate resumed, refused the answer and parked again\n" + TAKEN)
    assert wait_for_parked_exit(log, "release_toy", RUN, "approve_deploy", 1, parks=2, timeout=5) < 1
