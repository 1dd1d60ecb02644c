"""What the Releases view asks Airflow, in the API server's process: the runs that hold or wait for an
environment (their state, and their tasks awaiting a person's answer), the ad-hoc freeze's Variable, and the
teams of the release DAGs where Airflow has teams. Airflow's metadata database through its own session."""

from __future__ import annotations

from airflow.configuration import conf
from airflow.models.dag import DagModel
from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.sdk import Variable
from airflow.utils.session import create_session
from airflow.utils.state import TaskInstanceState
from sqlalchemy import select

from deployflow.airflow.releases_view.board import Gate, RunKey, RunStatus
from deployflow.governance.freeze import ADHOC_VARIABLE


class MetadataState:
    """Airflow's metadata database and Variables, read at each call (the view keeps nothing)."""

    def runs(self, keys: set[RunKey]) -> dict[RunKey, RunStatus]:
        if not keys:
            return {}
        dag_ids, run_ids = {d for d, _ in keys}, {r for _, r in keys}
        ti = TaskInstance
        with create_session() as session:
            states = session.execute(select(DagRun.dag_id, DagRun.run_id, DagRun.state)
                                     .where(DagRun.dag_id.in_(dag_ids), DagRun.run_id.in_(run_ids))).all()
            waiting = session.execute(select(ti.dag_id, ti.run_id, ti.task_id, ti.start_date)
                                      .where(ti.dag_id.in_(dag_ids), ti.run_id.in_(run_ids),
                                             ti.state == TaskInstanceState.AWAITING_INPUT)
                                      .order_by(ti.start_date)).all()
        gates: dict[RunKey, list[Gate]] = {}
        for dag_id, run_id, task_id, started in waiting:
            gates.setdefault((dag_id, run_id), []).append(Gate(task_id, started.isoformat() if started else None))
        return {(d, r): RunStatus(str(getattr(state, "value", state)) if state else None, tuple(gates.get((d, r), ())))
                for d, r, state in states if (d, r) in keys}

    def freeze_variable(self) -> str | None:
        return Variable.get(ADHOC_VARIABLE, default=None)

    def teams(self, dag_ids: set[str]) -> dict[str, str | None]:
        if not conf.getboolean("core", "multi_team", fallback=False):
            return {}
        return DagModel.get_dag_id_to_team_name_mapping(sorted(dag_ids))
