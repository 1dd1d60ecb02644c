"""A release of one version to one Kubernetes environment: prepare, shift, promote, rollback, status.

The same steps and results as the Docker Rollout, over Kubernetes objects.
Two Deployments take turns, ``<service>-blue`` and ``<service>-green``; the
main Service ``<service>`` selects the live colour. Per strategy:

- blue-green: the idle colour starts in full behind ``<service>-preview``;
  shift switches the main Service's selector to it in one write; promote waits
  the scale-down delay, watching, then scales the old colour to 0.
- canary: a few pods of the new colour (track ``canary``) behind
  ``<service>-canary``, and a fresh ``<service>-baseline`` of the old version
  for analysis; traffic moves by the HTTPRoute's weights (Gateway API) or, with
  ``traffic: replicas``, by the ratio of pods behind a main Service that
  selects every colour. Promote scales the new colour to full size as
  ``stable`` and makes it the main Service's colour.
- rolling: the live colour's Deployment takes the new pod template and
  Kubernetes replaces pods in batches (maxSurge = batch_size,
  maxUnavailable from the catalog); shift waits on the rollout's status.

Rollback puts traffic back on the live colour (for rolling: its previous pod
template, so Kubernetes brings back the previous ReplicaSet) and scales the
new pods to 0. Every step reads the objects first and converges, so a retried
step finishes the work instead of doubling it. What ``prepare`` decided is kept
in the ConfigMap ``<service>-release``: the deployer pod has no disk.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from deployflow import health
from deployflow.catalog import Environment, Service
from deployflow.deployer.rollout import StepFailed, Target, nothing_to_roll_back
from deployflow.kubernetes.cluster import Cluster
from deployflow.kubernetes.manifests import GROUP, Manifests
from deployflow.kubernetes.traffic import Traffic, traffic_for
from deployflow.platforms.base import BASELINE, COLOURS, other_colour
from deployflow.strategies.base import Step, Strategy

log = logging.getLogger("deployflow.deployer")

@dataclass(frozen=True)
class Record:
    """What ``prepare`` found and decided: the new version's colour, the live one, and what ran there."""

    version: str
    image: str
    strategy: str
    colour: str
    live: str | None
    previous: Target | None
    already_live: bool = False
    outcome: str | None = None  # "promoted" or "rolled back"
    percent: int = 0  # the share of traffic the last canary step gave the new version


def kubernetes_rollout(service: Service, env: Environment, api_client: Any, *, strategy: Strategy, target: Target) -> KubernetesRollout:
    """The rollout for a kubernetes environment, talking to the cluster through ``api_client``."""
    import requests

    manifests = Manifests(service, env)
    return KubernetesRollout(cluster=Cluster.from_api_client(api_client, manifests.namespace), manifests=manifests,
                             strategy=strategy, target=target, session=requests.Session())


class KubernetesRollout:
    def __init__(
        self, *, cluster: Cluster, manifests: Manifests, strategy: Strategy, target: Target, session: health.Session,
        sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic, poll_s: float = 1.0,
    ) -> None:
        self.cluster = cluster
        self.m = manifests
        self.env = manifests.env
        self.strategy = strategy
        self.target = target
        self.session = session
        self.sleep = sleep
        self.clock = clock
        self.poll_s = poll_s
        self.traffic: Traffic = traffic_for(strategy.name, manifests.env, cluster, manifests)

    # ---- the record ------------------------------------------------------------------

    def _read_record(self) -> Record | None:
        config_map = self.cluster.get("ConfigMap", self.m.record_name)
        if not config_map or "release.json" not in (config_map.get("data") or {}):
            return None
        data = json.loads(config_map["data"]["release.json"])
        data["previous"] = Target(**data["previous"]) if data.get("previous") else None
        return Record(**data)

    def _load_record(self, *, finished: bool = False) -> Record | None:
        """This release's record; a finished one only if ``finished`` (a retried last step)."""
        record = self._read_record()
        if record is None or record.version != self.target.version or (record.outcome and not finished):
            return None
        return record

    def _save(self, record: Record) -> Record:
        self.cluster.apply(self.m.record(asdict(record)))
        return record

    def _require_record(self) -> Record:
        record = self._load_record(finished=True)
        if record is None:
            raise StepFailed(f"no prepared release of {self.target.version} in {self.env.name}; run prepare first")
        return record

    # ---- live state ------------------------------------------------------------------

    def _deployment(self, colour: str) -> dict | None:
        return self.cluster.get("Deployment", self.m.deployment_name(colour))

    def _live_colour(self) -> str | None:
        """The colour the last finished release left serving, if its Deployment still runs pods."""
        record = self._read_record()
        if record is None:
            return None
        if record.outcome == "promoted" or record.already_live:
            live = record.colour
        else:  # rolled back, or a release that never finished: the colour live before it
            live = record.live
        deployment = self._deployment(live) if live else None
        return live if deployment and deployment["spec"].get("replicas") else None

    @staticmethod
    def _target_of(deployment: dict) -> Target:
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        return Target(labels[f"{GROUP}/version"], deployment["spec"]["template"]["spec"]["containers"][0]["image"])

    @staticmethod
    def _ready(deployment: dict) -> tuple[bool, str]:
        """Whether the Deployment's rollout is complete and every pod ready, and what it waits for if not."""
        want = deployment["spec"].get("replicas", 1)
        status = deployment.get("status") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
                raise StepFailed(f"Deployment {deployment['metadata']['name']} exceeded its progress deadline: {condition.get('message')}")
        counts = {k: status.get(k) or 0 for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas")}
        observed = (status.get("observedGeneration") or 0) >= (deployment["metadata"].get("generation") or 0)
        done = observed and counts["replicas"] == want and all(counts[k] >= want for k in ("updatedReplicas", "readyReplicas", "availableReplicas"))
        return done, f"{counts['updatedReplicas']} updated, {counts['readyReplicas']} ready of {want} ({counts['replicas']} pods)"

    def _wait_ready(self, colour: str) -> None:
        started = self.clock()
        name = self.m.deployment_name(colour)
        while True:
            deployment = self._deployment(colour)
            if deployment is None:
                raise StepFailed(f"Deployment {name} is gone")
            done, progress = self._ready(deployment)
            if done:
                log.info("%s: %s in %.1f s", name, progress, self.clock() - started)
                return
            if self.clock() - started >= self.env.health.timeout_s:
                raise StepFailed(f"Deployment {name} not ready after {self.env.health.timeout_s} s: {progress}")
            self.sleep(self.poll_s)

    def _route_weights(self) -> dict[str, int]:
        route = self.cluster.get("HTTPRoute", self.m.service_name())
        if not route:
            return {}
        return {b["name"]: b.get("weight", 1) for r in route["spec"].get("rules", []) for b in r.get("backendRefs", [])}

    def _share(self) -> int:
        """The canary step traffic has reached (with replica ratio the real share is only near it)."""
        record = self._read_record()
        return record.percent if record else 0

    # ---- writes ----------------------------------------------------------------------

    def _run(self, colour: str, target: Target, replicas: int, track: str = "stable") -> None:
        self.cluster.apply(self.m.deployment(colour, track, target.version, target.image, replicas,
                                             rolling=self.strategy.name == "rolling"))

    # ---- steps -----------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        """Start the new version beside the live one, with no traffic (rolling: start replacing pods)."""
        started = time.monotonic()
        record = self._load_record()
        if record is None:
            live = self._live_colour()
            previous = self._target_of(self._deployment(live)) if live else None
            if previous and previous.version == self.target.version:
                record = Record(self.target.version, self.target.image, self.strategy.name, live, live, None, already_live=True)
            else:
                colour = live if live and self.strategy.name == "rolling" else (other_colour(live) if live else COLOURS[0])
                record = Record(self.target.version, self.target.image, self.strategy.name, colour, live, previous)
            self._save(record)
        if record.already_live:
            log.info("prepare: %s is already live in %s (%s); nothing to do", self.target.version, self.env.name, record.colour)
            return self._result(record, started, [self.m.service_name()])
        n = self.env.replicas
        if record.previous is None or self.strategy.name == "rolling":
            # A first deploy (nothing to protect) or rolling: the pods go straight behind the main Service,
            # each taking traffic once its readiness probe passes.
            self._run(record.colour, self.target, n)
            self.traffic.switch(record.colour)
            checked = [self.m.service_name()]
        elif self.strategy.name == "blue-green":
            self.traffic.hold(record.live)  # a canary by replica ratio may have left it selecting every colour
            self._run(record.colour, self.target, n)
            self.traffic.select("preview", record.colour)
            checked = [self.m.service_name("preview")]
        else:
            count = self.strategy.first_instances(n)
            self._run(record.colour, self.target, count, track="canary")
            self.traffic.select("canary", record.colour)
            if self.env.analysis.baseline and any(s.analysis for s in self.strategy.steps(n)):
                # A fresh baseline of the old version, as many pods as the canary: judged against it.
                self._run(BASELINE, record.previous, count, track=BASELINE)
                self.traffic.select(BASELINE, BASELINE)
            self.traffic.hold(record.live)
            checked = [self.m.service_name("canary")]
        log.info("prepare: %s applied in %s as %s in %.1f s (previous: %s)", self.target.version, self.env.name,
                 record.colour, time.monotonic() - started, record.previous.version if record.previous else "none")
        return self._result(record, started, checked)

    def shift(self, percent: int | None = None) -> dict[str, Any]:
        """Move traffic to the new version: switch (blue-green), the canary's steps, or the rolling update's end."""
        started = time.monotonic()
        record = self._require_record()
        if record.outcome == "rolled back":
            raise StepFailed(f"{self.target.version} was rolled back in {self.env.name}; release it again from prepare")
        result = self._result(record, started, [self.m.service_name()])
        if record.already_live or record.outcome == "promoted":
            return {**result, "analysis": False}
        if record.previous is None or self.strategy.name == "rolling":
            self._guarded(record, lambda: self._wait_ready(record.colour), "the rollout")
            return {**self._result(record, started, [self.m.service_name()]), "analysis": False}
        if self.strategy.name == "blue-green":
            self._wait_ready(record.colour)
            self.traffic.switch(record.colour)
            log.info("shift: 100 %% of traffic on %s (%s)", self.target.version, record.colour)
            return {**self._result(record, started, [self.m.service_name()]), "analysis": False}
        steps = self.strategy.steps(self.env.replicas)[:-1]  # 100 % is promote's
        if percent is not None:
            planned = [s.percent for s in steps]
            if percent not in planned:
                raise StepFailed(f"--weight {percent} is not a step of canary here; valid values are {planned}")
            steps = [s for s in steps if s.percent == percent]
        else:  # a retried shift goes on from where traffic is; the steps after the analysed one are promote's
            reached = self._share()
            steps = [s for s in steps if s.percent >= reached]
            analysed = [i for i, s in enumerate(steps) if s.analysis]
            steps = steps[: analysed[0] + 1] if analysed else steps
        for step in steps:
            self._canary_step(record, step)
            if step.pause_s and not step.analysis:
                self._watch(record, step.pause_s, f"the {step.percent} % step")
        return {**self._result(record, started, [self.m.service_name("canary")]), "analysis": any(s.analysis for s in steps)}

    def promote(self) -> dict[str, Any]:
        """Make the new version the live one and scale the old one to 0."""
        started = time.monotonic()
        record = self._require_record()
        if record.outcome == "promoted" or record.already_live or record.previous is None or self.strategy.name == "rolling":
            self._save(replace(record, outcome="promoted"))
            return self._result(record, started, [self.m.service_name()])
        n = self.env.replicas
        if self.strategy.name == "canary":
            reached = self._share()
            for step in [s for s in self.strategy.steps(n)[:-1] if s.percent > reached]:
                self._canary_step(record, step)
                if step.pause_s:
                    self._watch(record, step.pause_s, f"the {step.percent} % step")
            self._run(record.colour, self.target, n)  # full size, as the stable track
            self._guarded(record, lambda: self._wait_ready(record.colour), "the canary's scale-up")
            self.traffic.switch(record.colour)
            self._save(replace(record, percent=100))
            log.info("promote: 100 %% of traffic on %s", self.target.version)
        delay = self.strategy.scale_down_delay()
        if delay:
            self._watch(record, delay, "the scale-down delay")
        for colour, target in ((record.live, record.previous), (BASELINE, record.previous)):
            if self._deployment(colour):
                self._run(colour, target, 0, track=BASELINE if colour == BASELINE else "stable")
        self._save(replace(record, outcome="promoted"))
        log.info("promote: %s is live in %s; %s scaled to 0 in %.1f s", self.target.version, self.env.name,
                 record.live, time.monotonic() - started)
        return self._result(record, started, [self.m.service_name()])

    def rollback(self) -> dict[str, Any]:
        """All traffic back to the previous version (restarting its pods if needed), then scale the new one to 0."""
        started = time.monotonic()
        record = self._load_record(finished=True)
        done = nothing_to_roll_back(record, self.env.name)
        if done is not None:
            return done
        previous = record.previous.version if record.previous else None
        if record.previous is None:
            self.cluster.delete("Deployment", self.m.deployment_name(record.colour))
            self._save(replace(record, outcome="rolled back"))
            log.info("rollback: first deploy of %s: rolled back to nothing", self.m.service.name)
            return {"rolled_back": True, "to": None, "seconds": round(time.monotonic() - started, 2)}
        self._restore(record, wait=True)
        restored = time.monotonic() - started
        if self.strategy.name != "rolling":
            for colour, target in ((record.colour, self.target), (BASELINE, record.previous)):
                if self._deployment(colour):
                    self._run(colour, target, 0, track=BASELINE if colour == BASELINE else "canary")
        self._save(replace(record, outcome="rolled back"))
        log.info("rollback: 100 %% of traffic on %s after %.2f s", previous, restored)
        return {"rolled_back": True, "to": previous, "seconds_to_old_traffic": round(restored, 2),
                "seconds": round(time.monotonic() - started, 2)}

    def status(self) -> dict[str, Any]:
        main = self.cluster.get("Service", self.m.service_name())
        selected = ((main or {}).get("spec", {}).get("selector") or {}).get(f"{GROUP}/colour")
        weights = self._route_weights()
        sets = {}
        for colour in (*COLOURS, BASELINE):
            deployment = self._deployment(colour)
            if not deployment:
                continue
            status = deployment.get("status") or {}
            sets[colour] = {
                "versions": [self._target_of(deployment).version],
                "replicas": deployment["spec"].get("replicas", 0), "ready": status.get("readyReplicas") or 0,
                "selected_by_main_service": selected in (None, colour) and main is not None,
            }
        return {"service": self.m.service.name, "environment": self.env.name, "namespace": self.m.namespace,
                "live": selected, "sets": sets, **({"route_weights": weights} if weights else {})}

    # ---- mechanics -------------------------------------------------------------------

    def _result(self, record: Record, started: float, services: list[str]) -> dict[str, Any]:
        return {
            "version": self.target.version, "colour": record.colour, "already_live": record.already_live,
            "previous": record.previous.version if record.previous else None,
            "instances": [self.env.kubernetes.service_url(s) for s in services],
            "seconds": round(time.monotonic() - started, 2),
        }

    def _canary_step(self, record: Record, step: Step) -> None:
        n = self.env.replicas
        # With Gateway API the canary's pods only need to carry their share; by replica ratio they are the share.
        canaries = max(step.new, math.ceil(step.percent * n / 100)) if self.traffic.pods_carry_share else step.new
        self._run(record.colour, self.target, canaries, track="canary")
        self._guarded(record, lambda: self._wait_ready(record.colour), f"the {step.percent} % step's scale-up")
        baseline = self._deployment(BASELINE) is not None and step.analysis
        if not self.traffic.pods_carry_share:
            self.traffic.split(step.percent, min(step.percent, 100 - step.percent) if baseline else 0)
        else:  # the share follows the pods: the new colour has canaries of them, the live one the rest
            stable = max(1, n - canaries)
            self._run(record.live, record.previous, stable)
            if not baseline and self._deployment(BASELINE):
                self._run(BASELINE, record.previous, 0, track=BASELINE)
            log.info("shift: about %d %% of traffic on %s (%d canary, %d stable pods)", round(100 * canaries / (canaries + stable)),
                     self.target.version, canaries, stable)
        self._save(replace(self._read_record() or record, percent=step.percent))

    def _guarded(self, record: Record, wait: Callable[[], None], what: str) -> None:
        """Run ``wait``; if the new version never gets ready, put traffic back on the old one and fail."""
        try:
            wait()
        except StepFailed as exc:
            restored = self._restore(record, wait=False)
            raise StepFailed(f"{self.target.version} failed during {what}: {exc}; "
                             + ("traffic restored to " + record.previous.version if restored else "no previous version to restore")) from None

    def _watch(self, record: Record, seconds: float, what: str) -> None:
        """Probe the new version's pods through its Service for ``seconds``; on failure restore and fail."""
        role = "canary" if self.strategy.name == "canary" and self._share() < 100 else ""
        h = self.env.health
        verdict = health.watch(self.session, [self.m.in_cluster_url(self.m.service_name(role))], h.paths(), seconds=seconds,
                               interval_s=min(h.interval_s, 0.5), sleep=self.sleep, clock=self.clock)
        if verdict.healthy:
            return
        failed_at = self.clock()
        restored = self._restore(record, wait=False)
        raise StepFailed(
            f"{self.target.version} failed its health checks during {what}: {verdict.reason()}; "
            + (f"traffic restored to {record.previous.version} in {self.clock() - failed_at:.2f} s" if restored
               else "no previous version to restore")
        )

    def _restore(self, record: Record, *, wait: bool) -> bool:
        """All traffic to the previous version; True if there was one. With ``wait``, until its pods are ready."""
        if record.previous is None or record.live is None:
            return False
        n = self.env.replicas
        live = self._deployment(record.live)
        intact = live is not None and live["spec"].get("replicas") == n and self._target_of(live) == record.previous
        if not intact:  # scaled down (replica ratio, scale-down delay), or rolling: the previous template brings back its ReplicaSet
            self._run(record.live, record.previous, n)
        if self.strategy.name != "rolling":
            if not (intact and self._ready(live)[0]):
                self._wait_ready(record.live)
            self.traffic.switch(record.live)  # the first write when the old pods still run: traffic back at once
        elif wait:
            self._wait_ready(record.live)
        log.warning("restored 100 %% of traffic to %s", record.previous.version)
        return True
