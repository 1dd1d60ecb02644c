"""The watch after promotion: all traffic is on the new version, the old version's instances still run.

Argo Rollouts' post-promotion analysis over its scale-down delay: for the
catalog's ``post_promotion.duration_s`` the new version's health paths are
probed (twice a second), its instances checked every second (all running,
none restarted: the platform's view; a container the engine restarts within
a second passes its probes again), and its errors and latency judged
against what the old version showed before the release. The first failure
puts all traffic back on the old version at once, inside the promote step,
and fails it with the reason; the rollback step then removes the new version.

An interval with no data to judge (no request reached the new version, or the
old one had none to compare with) is "nodata", and ``post_promotion.no_data``
decides: "fail" fails the watch at once; "pass" goes on as if it had passed;
"hold" goes on with the old version standing by and fails back to it at the
end if no interval of the watch had data (silence never promotes).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from deployflow.catalog import Environment
from deployflow.metrics.base import MetricsError
from deployflow.platforms.base import Workload
from deployflow.rollout.guards import Guards
from deployflow.record import Record
from deployflow.stores.base import ReleaseStore

log = logging.getLogger("deployflow.deployer")
UNREAD_LIMIT = 3  # intervals in a row whose metrics could not be read before the watch fails
INSTANCES_EVERY_S = 1.0  # how often the new version's instances are checked (a crash that restarts passes probes)


@dataclass(frozen=True)
class Judgement:
    """One interval's verdict on the new version: ``failure`` says why it failed (None: it did not); ``nodata``
    why there was nothing to judge (None: there was); ``verdict`` the judge's table as data (metrics, score)."""

    failure: str | None
    table: str = ""
    nodata: str | None = None
    verdict: Mapping[str, Any] | None = None


def watch_verdict(number: int, judged: Judgement) -> dict[str, Any]:
    """Interval ``number`` as the release record keeps it for the Releases view: the judge's verdict (its
    metrics, score, reasons) with what the watch made of it."""
    found = dict(judged.verdict or {})
    result = "fail" if judged.failure else "nodata" if judged.nodata else found.get("result") or "pass"
    return {**found, "interval": number, "result": result, "failure": judged.failure,
            "reasons": list(found.get("reasons") or [r for r in (judged.failure, judged.nodata) if r])}


@dataclass(frozen=True)
class Watched:
    """What the watch did, for promote's result: the seconds it watched, or why there was no watch (``skipped``)."""

    seconds: float = 0.0
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": self.skipped} if self.skipped else {"seconds": round(self.seconds, 2)}


def not_watched(record: Record, environment: Environment, keeps_old: bool) -> str | None:
    """Why the new version is not watched after promotion (None: it is)."""
    if not environment.post_promotion.enabled:
        return f"post_promotion is off in {environment.name}"
    if record.previous is None:
        return "a first deploy: no old version to go back to"
    if record.percent < 100:
        return f"{record.version} takes {record.percent} % of traffic, not all"
    if not keeps_old:
        return f"no instance of {record.previous.version} stands by to go back to (the release replaced it in place)"
    return None


class Judge(Protocol):
    def begin(self) -> None:
        """The watch starts now."""

    def judge(self, number: int) -> Judgement:
        """The new version since the watch began, against the old version before it."""


class HealthOnly:
    """The judge where no metrics are read: the health probes and instance checks decide alone."""

    def begin(self) -> None:
        pass

    def judge(self, number: int) -> Judgement:
        return Judgement(None, "no metrics read: health and instances only")


def keep_verdict(store: ReleaseStore, verdict: dict[str, Any]) -> None:
    """Add an interval's verdict to the release record as ``store`` has it now, where the Releases view reads it."""
    record = store.load()
    if record is not None and record.outcome is None:
        store.save(replace(record, watch=(*record.watch, verdict)))


def watch_after_promotion(record: Record, *, environment: Environment, keeps_old: bool, guards: Guards,
                          workload: Workload, judges: Callable[[str, str], Judge] | None, clock: Callable[[], float],
                          store: ReleaseStore | None = None) -> Watched:
    """Watch the new version for the catalog's ``post_promotion.duration_s``; what was watched (nothing when the
    watch is off, on a first deploy, or where no old instances stand by: in place, or after a rolling step).
    On a failure the old version takes all traffic back and StepFailed says why (Guards.abort).
    Each interval's verdict (``watch_verdict``) goes to the record in ``store`` before the watch acts on it."""
    config, replicas = environment.post_promotion, environment.replicas
    skipped = not_watched(record, environment, keeps_old)
    if skipped is not None:
        log.info("promote: no post-promotion watch: %s", skipped)
        return Watched(skipped=skipped)
    judge = judges(record.previous.version, record.version) if judges else HealthOnly()
    started = clock()
    judge.begin()
    log.info("post-promotion watch: %s takes all traffic, %s stands by; %d s, judged every %d s against %s's last %d s "
             "(in the judge's tables: baseline = %s before the watch, canary = %s since)", record.version,
             record.previous.version, config.duration_s, config.interval_s, record.previous.version, config.lookback_s,
             record.previous.version, record.version)
    number = unread = with_data = 0
    while (left := config.duration_s - (clock() - started)) > 0.05:
        number += 1
        interval_ends = clock() + min(config.interval_s, left)
        failed = f"{record.version} failed its post-promotion watch at interval {number}"
        while (part := interval_ends - clock()) > 0.05:  # instances checked every second: a restart is a death
            guards.watch(record, min(INSTANCES_EVERY_S, part), f"the post-promotion watch (interval {number})")
            new = workload.get(record.colour)
            if new.alive < replicas:
                guards.abort(record, f"{failed}: only {new.alive} of {replicas} instance(s) serve "
                                     "(the others stopped, restarted or are not ready)")
        try:
            judged, unread = judge.judge(number), 0
        except MetricsError as exc:  # a blip is survived; a watch that cannot see fails, as Argo's analysis errors do
            unread += 1
            log.warning("post-promotion interval %d: metrics not read (%d in a row): %s", number, unread, exc)
            judged = Judgement(f"metrics not read {unread} times in a row: {exc}" if unread >= UNREAD_LIMIT else None,
                               verdict={"result": "unread", "reasons": [f"metrics not read: {exc}"]})
        else:
            log.info("post-promotion interval %d:\n%s", number, judged.table)
        if store is not None:
            keep_verdict(store, watch_verdict(number, judged))
        if judged.failure:
            guards.abort(record, f"{failed}: {judged.failure}")
        if judged.nodata:
            if config.no_data == "fail":
                guards.abort(record, f"{failed}: {judged.nodata}; no-data policy 'fail'")
            log.info("post-promotion interval %d: %s; no-data policy %r: the watch goes on", number, judged.nodata,
                     config.no_data)
        elif not unread:
            with_data += 1
    had = f"{with_data} of {number} interval(s) had data"
    if not with_data and config.no_data == "hold":
        guards.abort(record, f"{record.version} failed its post-promotion watch: {had}, nothing was judged; no-data "
                             f"policy 'hold' goes back to {record.previous.version} rather than promote on silence")
    alone = "" if with_data else f": judged on health and instances alone (no-data policy {config.no_data!r})"
    log.info("post-promotion watch: %s passed %d interval(s) in %.1f s; %s%s", record.version, number,
             clock() - started, had, alone)
    return Watched(seconds=clock() - started)
