"""The Kubernetes objects of one service in one environment, from the templates beside this file.

Pure builders: they return dicts and never talk to a cluster, so every object
the deployer would send can be validated against the Kubernetes schemas in
tests. A template value that is exactly ``${key}`` is replaced by the value
of ``key`` with its type (a number stays a number, a mapping a mapping); a
value of None removes the field.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from deployflow.catalog import Environment, Service
from deployflow.catalog.urls import in_cluster_url
from deployflow.configuration import CONFIG_DIR, ResolvedConfig, config_version_of
from deployflow.errors import ConfigError

TEMPLATES = Path(__file__).resolve().parent / "templates"
GROUP = "deployflow.io"
COLOURS = ("blue", "green", "baseline")  # the two sets that take turns, and canary analysis' baseline
TRACKS = ("stable", "canary", "baseline")
HTTP_PORT = 80
_PLACEHOLDER = re.compile(r"^\$\{([a-z_]+)\}$")


@cache
def _template(name: str) -> tuple[dict, ...]:
    return tuple(d for d in yaml.safe_load_all((TEMPLATES / f"{name}.yaml").read_text()) if d)


def fill(node: Any, values: Mapping[str, Any]) -> Any:
    """The template ``node`` with every ``${key}`` replaced; a key missing from ``values`` is an error."""
    if isinstance(node, dict):
        filled = {k: fill(v, values) for k, v in node.items()}
        return {k: v for k, v in filled.items() if v is not None}
    if isinstance(node, list):
        return [fill(v, values) for v in node]
    if isinstance(node, str):
        match = _PLACEHOLDER.match(node)
        if match:
            return values[match.group(1)]
    return node


def to_yaml(manifests: list[dict]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)


def kubernetes_environment(service: Service, name: str) -> Environment:
    """The environment ``name`` of ``service``, which must be a kubernetes one (the deployer pod's, its RBAC's)."""
    env = service.environments.get(name)
    if env is None or env.kubernetes is None:
        valid = ", ".join(repr(e.name) for e in service.environments.values() if e.kubernetes) or "none"
        raise ConfigError("environment", f"{name!r} is not a kubernetes environment of {service.name}; valid values are {valid}")
    return env


class Manifests:
    """Object names, labels and full manifests for ``service`` in ``env`` (a kubernetes environment)."""

    def __init__(self, service: Service, env: Environment) -> None:
        if env.kubernetes is None:
            raise ValueError(f"environment {env.name!r} of {service.name} is not on the kubernetes platform")
        self.service = service
        self.env = env
        self.k8s = env.kubernetes
        self.namespace = env.kubernetes.namespace

    # ---- names and labels -----------------------------------------------------------

    def deployment_name(self, colour: str) -> str:
        """``<service>-blue``, ``<service>-green`` (the two sets that take turns) or ``<service>-baseline``."""
        if colour not in COLOURS:
            raise ValueError(f"colour {colour!r} is not valid; valid values are {', '.join(COLOURS)}")
        return f"{self.service.name}-{colour}"

    def service_name(self, role: str = "") -> str:
        """The main Service ``<service>``, or ``<service>-preview|canary|baseline``."""
        return f"{self.service.name}-{role}" if role else self.service.name

    @property
    def record_name(self) -> str:
        return f"{self.service.name}-release"

    def selector(self, colour: str | None = None) -> dict[str, str]:
        selector = {
            "app.kubernetes.io/name": self.service.name,
            "app.kubernetes.io/managed-by": "deployflow",
            f"{GROUP}/environment": self.env.name,
        }
        if colour:
            selector[f"{GROUP}/colour"] = colour
        return selector

    def labels(self, colour: str | None = None, track: str | None = None, version: str | None = None) -> dict[str, str]:
        """The selector's labels, plus the track (stable, canary, baseline: what canary analysis compares) and version."""
        labels = self.selector(colour)
        if track:
            labels[f"{GROUP}/track"] = track
        if version:
            labels[f"{GROUP}/version"] = version
        return labels

    def in_cluster_url(self, service_name: str) -> str:
        """How the deployer pod reaches a Service: cluster DNS."""

        return in_cluster_url(service_name, self.namespace)

    # ---- objects ---------------------------------------------------------------------

    def deployment(self, colour: str, track: str, version: str, image: str, replicas: int, *, rolling: bool = False) -> dict:
        """One colour's Deployment; ``rolling`` replaces its pods in batches (the rolling strategy)."""
        if track not in TRACKS:
            raise ValueError(f"track {track!r} is not valid; valid values are {', '.join(TRACKS)}")
        health, batches = self.env.health, self.env.rolling
        values = {
            "name": self.deployment_name(colour), "namespace": self.namespace,
            "labels": self.labels(colour, track, version), "selector": self.selector(colour), "image": image,
            "replicas": replicas, "progress_deadline_s": max(health.timeout_s, 10),
            # Rolling takes batches of batch_size new pods; otherwise every old pod stays until new ones are ready.
            "max_surge": batches.batch_size if rolling else "25%",
            "max_unavailable": batches.max_unavailable if rolling else 0,
            "port": self.service.port, "port_text": str(self.service.port), "track": track,
            "cpu": self.env.resources.cpu, "memory": self.env.resources.memory, **self._configuration(version, track),
            "image_pull_secrets": [{"name": s} for s in self.k8s.image_pull_secrets] or None,
            "ready_path": health.ready, "live_path": health.live, "probe_period_s": max(1, round(health.interval_s)),
        }
        return fill(_template("deployment")[0], values)

    def config_secret_name(self, config_version: str, part: str) -> str:
        """``<service>-config-<version>`` (the variables) or ``<service>-files-<version>``."""
        return f"{self.service.name}-{part}-{config_version}"

    def _configuration(self, version: str, track: str) -> dict[str, Any]:
        """The pod's variables, and with a configuration where it comes from: the release's two Secrets
        (named by the configuration version inside ``version``, so a rollback's pods get the old ones)."""
        env = [{"name": "PORT", "value": str(self.service.port)}, {"name": "BIND", "value": "0.0.0.0"},
               {"name": "APP_TRACK", "value": track}]
        config_version = config_version_of(version)
        if not config_version:
            return {"env": env, "env_from": None, "volume_mounts": None, "volumes": None}
        env += [{"name": "CONFIG_VERSION", "value": config_version}, {"name": "CONFIG_DIR", "value": CONFIG_DIR}]
        env += [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
                for name, ref in self.env.config.secrets.items() if ref.kind == "kubernetes_secret"]
        files = self.config_secret_name(config_version, "files")
        return {"env": env, "env_from": [{"secretRef": {"name": self.config_secret_name(config_version, "config")}}],
                "volume_mounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}],
                "volumes": [{"name": "config", "secret": {"secretName": files, "defaultMode": 0o444}}]}

    def config_secrets(self, config_version: str, config: ResolvedConfig) -> list[dict]:
        """The two Secrets of one configuration version: its variables and its files (either may be empty)."""
        documents = []
        for part, data in (("config", config.env), ("files", config.files)):
            values = {"name": self.config_secret_name(config_version, part), "namespace": self.namespace,
                      "labels": {**self.selector(), f"{GROUP}/config": config_version},
                      "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(data.items())}}
            documents.append(fill(_template("secret")[0], values))
        return documents

    def service_object(self, name: str, selector: Mapping[str, str]) -> dict:
        values = {"name": name, "namespace": self.namespace, "labels": self.selector(), "selector": dict(selector)}
        return fill(_template("service")[0], values)

    def httproute(self, weights: Mapping[str, int]) -> dict:
        """The route splitting traffic between Services by percentage (``weights``: Service name -> percent)."""
        parent = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": self.k8s.gateway}
        if self.k8s.gateway_namespace:
            parent["namespace"] = self.k8s.gateway_namespace
        values = {
            "name": self.service_name(), "namespace": self.namespace, "labels": self.selector(),
            "parent_refs": [parent], "hostnames": list(self.k8s.hostnames) or None,
            "backend_refs": [{"name": name, "port": HTTP_PORT, "weight": weight} for name, weight in weights.items()],
        }
        return fill(_template("httproute")[0], values)

    def record(self, record: Mapping[str, Any]) -> dict:
        values = {"name": self.record_name, "namespace": self.namespace, "labels": self.selector(),
                  "record": json.dumps(record, sort_keys=True)}
        return fill(_template("configmap")[0], values)

    def rbac(self) -> list[dict]:
        """ServiceAccount, Role and RoleBinding of the deployer pod; HTTPRoutes only where traffic uses them."""
        values = {"service_account": self.k8s.service_account, "namespace": self.namespace, "labels": self.selector()}
        documents = [fill(d, values) for d in _template("rbac")]
        if self.k8s.traffic != "gateway":
            for doc in documents:
                if doc["kind"] == "Role":
                    doc["rules"] = [r for r in doc["rules"] if "httproutes" not in r["resources"]]
        return documents
