"""Validation of Kubernetes objects against the official schemas, offline.

Built-in kinds (Deployment, Service, Pod, Role...) go through
kubernetes-validate in strict mode (unknown fields are errors, as with
``kubectl apply --validate=strict``) at KUBERNETES_VERSION, the pin, and at
the newest version it ships. HTTPRoute is a
Gateway API custom resource, which kubernetes-validate does not know: it goes
through the schemas kubernetes-models generates from the Gateway API CRDs
(npm ``@kubernetes-models/gateway-api``, installed by ``make test`` into
tests/k8s/node_modules). Those check types, enums and bounds; they do not
reject unknown fields, so the tests pin the HTTPRoute's exact content too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import kubernetes_validate

# The oldest minor release still supported upstream when this was pinned
# (1.35-1.37 in late 2026) is 1.35; the kubernetes client we pin (36.x) is built
# for 1.36. We validate at 1.35: an object valid there is valid on every supported
# cluster, since the GA APIs we use (apps/v1, v1, rbac/v1) only gain fields.
KUBERNETES_VERSION = "1.35"
NEWEST_VERSION = "1.37"  # the newest kubernetes-validate 1.37.0 ships: checked too, so no field we use went away
GATEWAY_KINDS = {("gateway.networking.k8s.io/v1", "HTTPRoute")}
NODE_DIR = Path(__file__).resolve().parent / "k8s"


class SchemaError(AssertionError):
    pass


def validate(manifest: dict) -> None:
    """Raise SchemaError (naming the object and the field) unless ``manifest`` is valid."""
    validate_all([manifest])


def validate_all(manifests: Sequence[dict]) -> int:
    """Validate every object; returns how many were checked."""
    gateway = [m for m in manifests if (m.get("apiVersion"), m.get("kind")) in GATEWAY_KINDS]
    for manifest in manifests:
        if manifest in gateway:
            continue
        for version in (KUBERNETES_VERSION, NEWEST_VERSION):
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                raise SchemaError(f"{_name(manifest)} is not valid at {version}: {path}: {exc.message}") from None
    if gateway:
        for manifest, error in zip(gateway, _validate_gateway(gateway)):
            if error:
                raise SchemaError(f"{_name(manifest)} is not valid (Gateway API v1): {error}")
    return len(manifests)


def _validate_gateway(manifests: list[dict]) -> list[str | None]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules").is_dir():
        raise RuntimeError("the Gateway API schemas need node and tests/k8s/node_modules: run `make test` (npm ci)")
    done = subprocess.run(
        [node, str(NODE_DIR / "validate_gateway.mjs")], input=json.dumps(manifests), capture_output=True, text=True,
        cwd=NODE_DIR, timeout=60, check=True,
    )
    return json.loads(done.stdout)


def _name(manifest: dict) -> str:
    return f"{manifest.get('kind')} {manifest.get('metadata', {}).get('name')!r}"
