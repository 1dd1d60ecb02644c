"""Who may see and do what in the Releases view: Airflow's own answer, never ours.

The user is the one Airflow's API signs in (``airflow.api_fastapi.core_api.security.get_user``: the JWT of the
``Authorization: Bearer`` header, else of the UI's ``_token`` cookie; none is 401, a bad or revoked one 403).
What they may do is the configured auth manager's ``is_authorized_dag`` on the service's release DAG, for its
runs (``DagAccessEntity.RUN``), as Airflow's own ``/api/v2/dags/{dag_id}/dagRuns`` asks it: GET to read the
releases, POST to trigger one (``can_act``). With the simple auth manager: viewer reads; user, op and admin
act too. A DAG of a team is asked with its team, where Airflow has teams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.base_user import BaseUser
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

READ, ACT = "GET", "POST"


@dataclass(frozen=True)
class Access:
    """What ``user`` may do with the release DAGs. :param teams: each DAG's team (empty: Airflow has none)."""

    user: BaseUser
    teams: Mapping[str, str | None]

    @property
    def name(self) -> str:
        return self.user.get_name()

    def may(self, method: str, dag_id: str) -> bool:
        details = DagDetails(id=dag_id, team_name=self.teams.get(dag_id))
        return get_auth_manager().is_authorized_dag(method=method, access_entity=DagAccessEntity.RUN, details=details,
                                                    user=self.user)

    def may_read(self, dag_id: str) -> bool:
        return self.may(READ, dag_id)

    def may_act(self, dag_id: str) -> bool:
        return self.may(ACT, dag_id)
