"""How far the runs in flight got, from Airflow's metadata database in the API server's process: each run's
current steps (its task instances running, deferred, queued or awaiting an answer) and its canary analysis'
verdicts so far (the analysis task's XComs ``verdict_<nnn>``, one a judged interval: numbers and sentences
of the judge, no secret). Two small queries for every run asked, whatever its size."""

from __future__ import annotations

from airflow.models.taskinstance import TaskInstance
from airflow.models.xcom import XComModel
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState
from sqlalchemy import select

from deployflow.airflow.releases_view.in_flight import RunKey, RunProgress, Step
from deployflow.airflow.task_ids import ANALYSIS, INTERVAL_VERDICT

CURRENT = (TaskInstanceState.RUNNING, TaskInstanceState.DEFERRED, TaskInstanceState.UP_FOR_RESCHEDULE,
           TaskInstanceState.UP_FOR_RETRY, TaskInstanceState.QUEUED, TaskInstanceState.AWAITING_INPUT)


def _text(state: object) -> str:
    return str(getattr(state, "value", state))


class MetadataProgress:
    """Airflow's metadata database, read at each call (the view keeps nothing)."""

    def progress(self, keys: set[RunKey]) -> dict[RunKey, RunProgress]:
        if not keys:
            return {}
        dag_ids, run_ids = {d for d, _ in keys}, {r for _, r in keys}
        ti, xcom = TaskInstance, XComModel
        with create_session() as session:
            steps = session.execute(select(ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.start_date)
                                    .where(ti.dag_id.in_(dag_ids), ti.run_id.in_(run_ids), ti.state.in_(CURRENT))
                                    .order_by(ti.start_date)).all()
            verdicts = session.execute(select(xcom.dag_id, xcom.run_id, xcom.value)
                                       .where(xcom.dag_id.in_(dag_ids), xcom.run_id.in_(run_ids), xcom.task_id == ANALYSIS,
                                              xcom.key.like(f"{INTERVAL_VERDICT}%"))
                                       .order_by(xcom.key)).all()
        found: dict[RunKey, tuple[list[Step], list[dict]]] = {key: ([], []) for key in keys}
        for dag_id, run_id, task_id, state, started in steps:
            if (dag_id, run_id) in found:
                found[(dag_id, run_id)][0].append(Step(task_id, _text(state), started.isoformat() if started else None))
        for dag_id, run_id, value in verdicts:
            verdict = XComModel.deserialize_value(_Row(value))
            if (dag_id, run_id) in found and isinstance(verdict, dict):  # a custom XCom backend's reference is left out
                found[(dag_id, run_id)][1].append(verdict)
        return {key: RunProgress(tuple(s), tuple(v)) for key, (s, v) in found.items()}


class _Row:
    """What ``XComModel.deserialize_value`` reads of a row: its ``value``."""

    def __init__(self, value: object) -> None:
        self.value = value
