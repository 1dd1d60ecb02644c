"""Build a service image at one commit and push it to the registry.

Talks to the Docker Engine API through a ``docker.APIClient`` that is passed
in (the Airflow adapter gets it from the docker provider's DockerHook).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from deployflow.catalog import Service
from deployflow.checkout import Checkout
from deployflow.errors import StageFailed

log = logging.getLogger(__name__)

BUILD_TYPES = ("release", "nightly")
_TAIL = 25  # build output lines quoted in a failure message


class EngineClient(Protocol):
    """The part of ``docker.APIClient`` a build uses."""

    def build(self, **kwargs: Any) -> Any: ...
    def push(self, repository: str, tag: str | None = None, **kwargs: Any) -> Any: ...
    def inspect_image(self, image: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class ImageSpec:
    context: str
    dockerfile: str
    repository: str
    tag: str
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    timeout_s: int = 900

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def image_spec(
    service: Service,
    source: Checkout,
    *,
    branch: str,
    build_type: str,
    base_image: str,
    registry: str | None = None,
) -> ImageSpec:
    """What to build: ``<registry>/<service>:<short-sha>`` with commit, branch and build type as args."""
    if build_type not in BUILD_TYPES:
        raise ValueError(f"build_type {build_type!r} is not valid; valid values are {', '.join(BUILD_TYPES)}")
    repository = f"{registry.rstrip('/')}/{service.image_name}" if registry else service.image_name
    args = {
        **service.build.args,
        "BASE_IMAGE": base_image,
        "APP_COMMIT": source.sha,
        "APP_BRANCH": branch,
        "BUILD_TYPE": build_type,
    }
    labels = {
        "org.opencontainers.image.revision": source.sha,
        "org.opencontainers.image.ref.name": branch,
        "io.deployflow.service": service.name,
        "io.deployflow.build-type": build_type,
    }
    return ImageSpec(
        context=os.path.normpath(os.path.join(source.path, service.source.context)),
        dockerfile=service.build.dockerfile,
        repository=repository,
        tag=source.short_sha,
        build_args=args,
        labels=labels,
        timeout_s=service.build.timeout_s,
    )


def build_kwargs(spec: ImageSpec) -> dict[str, Any]:
    """Arguments of ``APIClient.build`` for ``spec``."""
    return {
        "path": spec.context,
        "dockerfile": spec.dockerfile,
        "tag": spec.ref,
        "buildargs": dict(spec.build_args),
        "labels": dict(spec.labels),
        # No bridge network on the hosts we target; RUN steps use the host's.
        "network_mode": "host",
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
        "timeout": spec.timeout_s,
    }


@dataclass(frozen=True)
class BuiltImage:
    ref: str
    image_id: str
    size_mb: float
    seconds: float
    digest: str | None = None
    pushed: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_image(client: EngineClient, spec: ImageSpec) -> BuiltImage:
    """Run the build, streaming its output to the log; a failed step raises StageFailed."""
    started = time.monotonic()
    tail: deque[str] = deque(maxlen=_TAIL)
    log.info("build: %s from %s/%s", spec.ref, spec.context, spec.dockerfile)
    for chunk in client.build(**build_kwargs(spec)):
        if "error" in chunk:
            detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
            raise StageFailed(
                f"build of {spec.ref} failed: {detail.strip()}\n--- last build output ---\n" + "\n".join(tail)
            )
        text = chunk.get("stream", "").rstrip()
        if text:
            tail.append(text)
            log.info("  %s", text)
    info = client.inspect_image(spec.ref)
    return BuiltImage(
        ref=spec.ref,
        image_id=info["Id"],
        size_mb=round(info.get("Size", 0) / 2**20, 1),
        seconds=round(time.monotonic() - started, 2),
    )


def push_image(client: EngineClient, built: BuiltImage, spec: ImageSpec) -> BuiltImage:
    """Push to the registry named in the repository; returns the image with its digest."""
    started = time.monotonic()
    digest = None
    for chunk in client.push(spec.repository, tag=spec.tag, stream=True, decode=True):
        if "error" in chunk:
            raise StageFailed(f"push of {spec.ref} failed: {chunk['error']}")
        digest = chunk.get("aux", {}).get("Digest", digest)
    if not digest:
        raise StageFailed(f"push of {spec.ref} ended without a digest from the registry")
    log.info("push: %s@%s in %.1f s", spec.ref, digest, time.monotonic() - started)
    return BuiltImage(**{**built.to_dict(), "digest": digest, "pushed": True})
