"""Resolve's measure of a release against what its environment runs (``deployflow.governance.rerelease``), from
what a task reads: the environment's recent ledger rows, the ref's commit from the remote (``git ls-remote``
with the checkout's credentials, no clone), the configuration version prepare would release, and how many
other runs of the service are queued or running.
"""

from __future__ import annotations

import logging

from deployflow.airflow.configuration import config_version
from deployflow.airflow.git_credentials import git_runner
from deployflow.airflow.ledger import ledger_url
from deployflow.airflow.settings import state_dir
from deployflow.catalog import Service, project_root
from deployflow.governance.rerelease import BUILD, Rerelease, against_live
from deployflow.ledger import engine_for
from deployflow.ledger.live import MAX_PAGE, history
from deployflow.pipeline.checkout import commit_of
from deployflow.release import ReleaseRequest

log = logging.getLogger(__name__)

ACTIVE_STATES = ["queued", "running"]


def measure(service: Service, request: ReleaseRequest, *, dag_id: str) -> Rerelease:
    """What the release needs given what is live; BUILD (the whole pipeline, as before) when anything on the way
    cannot be read: a release is never skipped on a guess."""
    try:
        engine = engine_for(ledger_url(state_dir()), reader=True)  # no migration, no write lock
        try:
            recent = history(engine, service.name, environment=request.environment, limit=MAX_PAGE).releases
        finally:
            engine.dispose()
        location = service.source.location(project_root())
        return against_live(
            recent, environment=request.environment,
            commit=lambda: commit_of(location, request.git_ref, run=git_runner(service.source)),
            config=lambda: config_version(service.environments[request.environment]),
            others_running=lambda: _others_running(dag_id),
        )
    except Exception as exc:  # noqa: BLE001 - the ledger, the remote, a secret, the API server: build, as before
        log.warning("could not compare the release with what is live (%s: %s): building it", type(exc).__name__, exc)
        return Rerelease(BUILD, f"what is live could not be compared: {exc}")


def _others_running(dag_id: str) -> int:
    """Runs of the service's DAG queued or running besides this one (each may change what is live)."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance  # a task's, not the DAG file's, import

    return max(0, RuntimeTaskInstance.get_dr_count(dag_id=dag_id, states=ACTIVE_STATES) - 1)
