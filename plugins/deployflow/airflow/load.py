"""The analysis load task: synthetic traffic while the release is judged, in a container, not a worker slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from deployflow.airflow.deployer_step import DEPLOYER_IMAGE
from deployflow.airflow.runs import skip
from deployflow.airflow.skips import no_load_rate
from deployflow.airflow.sites import environment_site
from deployflow.airflow.task_ids import ANALYSIS, PROMOTE, ROLLBACK, SHIFT
from deployflow.catalog import Service

if TYPE_CHECKING:
    from airflow.sdk import Context


def load_seconds(service: Service, environment: str, analysed: bool, watched: bool) -> int:
    """The longest the judging can last, and the steps between (a bound: the release stops the load sooner)."""
    env = service.environments[environment]
    return int((2 * env.analysis.intervals * env.analysis.interval_s if analysed else 0)
               + (env.post_promotion.duration_s if watched else 0) + 120)


class AnalysisLoadOperator(BaseOperator):
    """Synthetic traffic through the environment's proxy while the release is judged (the idea of Flagger's
    load tester): canary analysis and the post-promotion watch need requests to judge.

    Runs when the catalog's ``analysis.load_rate`` is above 0 and the release has something to judge: an
    analysed canary step, or a post-promotion watch (not on a first deploy); skips otherwise.

    The environment's site drives it (``Site.load``). On a Docker environment it is a detached container of the deployer image on the environment's
    Docker engine, its ``docker_host``'s where it has one (``python -m deployflow.analysis.loadgen``, host network),
    and the task returns as soon as it is started: the judging lasts minutes, and a task generating traffic in-process held a worker slot for all
    of it, while the container costs one small process on the engine the release already uses, next to the
    proxy it loads (no network between). It stops itself at its bound (the longest the judging can last);
    a failed analysis stops it, and the record task (which always runs) stops it, logs its report and
    removes it. A retried load task replaces a running load (one name per environment), never adds one.
    On Kubernetes the front URL is the cluster's, so the load runs in the task.

    :param service: the catalog entry.
    :param environment_name: the run's environment (templated).
    :param image: the image of the load container: the deployer's (templated).
    """

    template_fields: Sequence[str] = ("environment_name", "image")
    ui_color = "#fbe9e7"

    def __init__(self, *, service: Service, environment_name: str, image: str = DEPLOYER_IMAGE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.service = service
        self.environment_name = environment_name
        self.image = image

    def execute(self, context: Context) -> dict[str, Any]:
        env = self.service.environments[self.environment_name]
        shifted = context["ti"].xcom_pull(task_ids=SHIFT) or {}
        analysed, watched = bool(shifted.get("analysis")), env.post_promotion.enabled and bool(shifted.get("previous"))
        if why := no_load_rate(env):
            skip(context, why)
        if not (analysed or watched):
            why = f"post_promotion is off in {env.name}" if not env.post_promotion.enabled else "a first deploy"
            skip(context, f"nothing to drive traffic for: no canary analysis, no post-promotion watch ({why})")
        seconds = load_seconds(self.service, self.environment_name, analysed, watched)
        site = environment_site(self.service, self.environment_name)
        url = f"{site.front_url()}/"
        self.log.info("load: %.0f requests/s to %s for up to %d s", env.analysis.load_rate, url, seconds)
        return site.load().start(image=self.image, url=url, rate=env.analysis.load_rate, max_seconds=seconds,
                          judging_over=lambda: _judging_over(context))


def _judging_over(context: Context) -> bool:
    """The analysis failed, or promote or rollback is done: nothing is judged any more."""
    ti = context["ti"]
    verdict = ti.xcom_pull(task_ids=ANALYSIS, key="verdict") or {}
    return verdict.get("result") == "fail" or bool(ti.xcom_pull(task_ids=PROMOTE)) or bool(ti.xcom_pull(task_ids=ROLLBACK))


def stop_load(service: Service, environment: str, log: Any) -> None:
    """Stop the environment's load, keeping its report for the record (best effort: never fails)."""
    if environment not in service.environments:
        return
    try:
        if environment_site(service, environment).load().stop():
            log.info("load: stopped %s's load in %s", service.name, environment)
    except Exception as exc:  # the load stops at its own bound anyway
        log.warning("load: could not stop %s's load in %s: %s", service.name, environment, exc)


def finish_load(service: Service, environment: str, log: Any) -> dict[str, Any] | None:
    """Stop and remove the environment's load; log and return its report (best effort: never fails)."""
    if environment not in service.environments:
        return None
    try:
        report = environment_site(service, environment).load().finish()
    except Exception as exc:  # the record must not fail on the load; it stops at its own bound
        log.warning("load: could not stop %s's load in %s: %s", service.name, environment, exc)
        return None
    if report is not None:
        log.info("load: %s (removed)", report["summary"])
    return report
