"""The release DAG's first task: resolve the request, then take the environment's lock, in one task process.

Resolve validates the run's params against the catalog (a bad request is refused at once, before any wait),
then takes the lock of the requested environment (``lock.py``), waiting in reschedule mode while another run
holds it, and only then decides against what is live (a re-release, the live image with a new configuration)
and what the request skips: what it reads as live cannot change under it until the record task lets go.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue, SkipMixin
from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.announce import announce
from deployflow.airflow.governance import govern
from deployflow.airflow.grants import require_grants
from deployflow.airflow.lock import POKE_INTERVAL_S, take_in_turn
from deployflow.airflow.rerelease import measure
from deployflow.airflow.runs import is_scheduled, requested_by
from deployflow.airflow.skips import DECIDED, decided_skips
from deployflow.airflow.task_ids import BUILD, NOTE, RECORD, REFUSED, REQUEST, TEST, release_dag_id
from deployflow.catalog import Service
from deployflow.errors import DeployflowError
from deployflow.governance.rerelease import ALREADY_LIVE, REUSE
from deployflow.release import ReleaseRequest, run_note

if TYPE_CHECKING:
    from airflow.sdk import Context

XCOM_RETURN_KEY = "return_value"


class ResolveReleaseOperator(BaseSensorOperator, SkipMixin):
    """Validate the run's params against the catalog, take the environment's lock, and push the release request to
    XCom, with the run's note (key ``note``: environment, strategy, ref, who and why) for whoever sets it through
    the REST API.

    Until the lock is this run's, each poke leaves the request under the key ``request`` (the record task's
    ledger line names the environment of a release that timed out waiting) and returns False: in reschedule mode
    a release waiting behind another holds no worker slot. A release of the live commit and configuration skips
    every later task but the record ("already live"); one of the live commit with a new configuration takes the
    live release's image (``artifact``, as a promotion does).

    :param service: the catalog entry this DAG releases.
    """

    ui_color = "#e8f0fe"

    def __init__(self, *, service: Service, **kwargs: Any) -> None:
        kwargs.setdefault("mode", "reschedule")
        kwargs.setdefault("poke_interval", POKE_INTERVAL_S)
        super().__init__(**kwargs)
        self.service = service

    def poke(self, context: Context) -> bool | PokeReturnValue:
        request, decided = self._request(context)
        context["ti"].xcom_push(key=REQUEST, value=request.to_dict())
        if not take_in_turn(self.service.name, request.environment, context, self.task_id, self.log):
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._resolve(context, request, decided))

    def _request(self, context: Context) -> tuple[ReleaseRequest, dict[str, Any]]:
        """The request and what governance decides of it; refuses a bad one (not retried: it will not get better)."""
        dag_run = context["dag_run"]
        try:
            request = ReleaseRequest.from_params(
                self.service, dict(context["params"]), requested_by=requested_by(dag_run), scheduled=is_scheduled(dag_run),
            )
            grants = require_grants(self.service)
            grants.require_deployer(request.environment, getattr(dag_run, "triggering_user_name", None),
                                    scheduled=is_scheduled(dag_run))
            decided = govern(self.service, request, now=datetime.now(timezone.utc))
        except (DeployflowError, AirflowFailException) as exc:
            # The record task writes the refusal to the ledger (who asked comes from the run itself).
            context["ti"].xcom_push(key=REFUSED, value=str(exc))
            raise AirflowFailException(str(exc)) from None
        return request, decided

    def _resolve(self, context: Context, request: ReleaseRequest, decided: dict[str, Any]) -> dict[str, Any]:
        """The resolved request, once the lock is this run's: against what is live, and what it skips."""
        self.log.info(
            "release %s of %s to %s with %s, requested by %s%s",
            request.git_ref, request.service, request.environment, request.strategy, request.requested_by,
            f" ({request.reason})" if request.reason else "",
        )
        resolved = {**request.to_dict(), **decided}
        if not (request.promote_from or request.rollback_to or request.force):  # those take an artifact of their own
            rerelease = measure(self.service, request, dag_id=release_dag_id(self.service.name))
            self.log.info("against what is live in %s: %s (%s)", request.environment, rerelease.need, rerelease.reason)
            if rerelease.artifact is not None:
                resolved.update({"artifact": rerelease.artifact.to_dict(), rerelease.need: rerelease.reason})
        version = (resolved.get("artifact") or {}).get("short_sha")
        note = run_note(resolved, version)
        self.log.info("run note: %s", note)
        context["ti"].xcom_push(key=NOTE, value=note)
        if resolved.get(ALREADY_LIVE):
            # The record task alone runs (it says "already live"); the scheduler skips the rest, build first.
            context["ti"].xcom_push(key=XCOM_RETURN_KEY, value=resolved)  # the skip ends execute before Airflow would
            # Raises: resolve ends here, successfully, and tells no channel; the record tells them how it ended.
            self.skip(context["ti"], [t for t in self.get_flat_relatives(upstream=False) if t.task_id != RECORD])
        announce(self.service, "started", resolved, context, version=version, reason=request.reason)
        # What the request already decides is skipped now, by the scheduler, before any of it would start a process
        # (skips.py); a release built and tested already (a promotion, a rollback, the live image with a new
        # configuration) skips build (which checks out first) and the suites too: skipped by build,
        # the scheduler would walk that skip down one level per loop (about 6 s measured).
        resolved[DECIDED] = decided_skips(self.service, resolved)
        if resolved.get("artifact"):
            self.log.info("%s: checkout, build and tests skipped", unbuilt_reason(resolved))
        for task_id, why in resolved[DECIDED].items():
            self.log.info("%s skipped: %s", task_id, why)
        skipped = [t for t in self.get_flat_relatives(upstream=False)
                   if t.task_id in resolved[DECIDED] or (resolved.get("artifact") and is_unbuilt(t.task_id))]
        if skipped:
            context["ti"].xcom_push(key=XCOM_RETURN_KEY, value=resolved)  # the skip ends execute before Airflow would
            self.skip(context["ti"], skipped)
        return resolved


def is_unbuilt(task_id: str) -> bool:
    """Whether ``task_id`` is one of the tasks an artifact stands for: build (and its checkout), a suite."""
    return task_id == BUILD or task_id.startswith(f"{TEST}.")


def unbuilt_reason(resolved: dict[str, Any]) -> str:
    """Why a release takes an artifact instead of building one."""
    artifact = resolved["artifact"]
    if resolved.get(REUSE):
        return resolved[REUSE]
    doing = "rolling back to" if resolved.get("rollback_to") else "promoting"
    return f"{doing} {artifact['short_sha']} as {artifact['source']} promoted it (run {artifact['run_id']})"
