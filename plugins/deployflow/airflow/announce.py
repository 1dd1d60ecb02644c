"""Telling the service's channels what happened to a release: the event, in plain words, with a link to the run.

Called by the release's own tasks (resolve: started; the gate: awaiting approval; record: promoted, rolled
back, rejected, failed); :func:`deployflow.airflow.notifications.notify` never raises, so a channel that is
down costs the release at most its timeout and never its outcome.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.sdk import conf

from deployflow.catalog import Service
from deployflow.governance.notifications import ReleaseEvent

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)


def run_url(dag_id: str, run_id: str) -> str:
    """The run in the Airflow UI (``[api] base_url``), '' when Airflow does not know its own address."""
    base = (conf.get("api", "base_url", fallback="") or "").rstrip("/")
    return f"{base}/dags/{quote(dag_id)}/runs/{quote(run_id)}" if base else ""


def announce(service: Service, event: str, resolved: dict[str, Any], context: Context, *, version: str | None,
             reason: str = "", previous: str | None = None) -> list[dict[str, Any]]:
    """Send ``event`` of this run's release to every channel of its environment that takes it."""
    environment = resolved.get("environment")
    if environment not in service.environments:
        return []  # refused before an environment was known: there is no environment's channel to tell
    channels = service.channels(environment)
    if not channels:
        return []
    # Imported only where there is a channel to tell, not with the DAG file: the http and smtp providers'
    # notifiers (a tenth of a second of each task's CPU where resolve and record announced to nobody).
    from deployflow.airflow.notifications import notify

    dag_run = context["dag_run"]
    told = ReleaseEvent(
        event=event, service=service.name, environment=environment, version=version, previous=previous,
        strategy=str(resolved.get("strategy") or ""), run_id=context["run_id"],
        requested_by=str(resolved.get("requested_by") or ""), reason=reason,
        url=run_url(dag_run.dag_id, context["run_id"]), at=datetime.now(timezone.utc).isoformat(),
    )
    return notify(told, channels, context, log)
