"""Build a service image at one commit and push it to the registry.

Talks to the Docker Engine API through a ``docker.APIClient`` that is passed
in (the Airflow adapter gets it from the docker provider's DockerHook). The
build context and the Dockerfile are checked, symlinks resolved, to lie inside
the checkout before any Docker call (``contained_build_paths``); an engine or
connection error ends the stage with one line (``StageFailed``), never a
traceback.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import requests
from docker.errors import DockerException

from deployflow.catalog import Service
from deployflow.pipeline.checkout import Checkout
from deployflow.configuration import quantity
from deployflow.errors import ConfigError, StageFailed
from deployflow.platforms.hardening import BUILD_MEMORY

log = logging.getLogger(__name__)

BUILD_TYPES = ("release", "nightly")
_TAIL = 25  # build output lines quoted in a failure message
_ENGINE_ERROR_MAX = 300  # characters of an engine error quoted in the task's one-line message
# What a call to the engine may raise besides a build step's own error: the engine's HTTP errors
# (APIError), no engine or a timeout (requests), a Dockerfile the SDK cannot read (OSError).
ENGINE_ERRORS = (DockerException, requests.RequestException, OSError)
BUILD_NETWORK = "none"  # a build's RUN steps: no network (see build_kwargs), unless the service is granted "host"


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
    network: str = BUILD_NETWORK  # "host" where the grants give the service's builds the network

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
    network: str = BUILD_NETWORK,
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
    context, dockerfile = contained_build_paths(source.path, service.source.context, service.build.dockerfile)
    return ImageSpec(
        context=context,
        dockerfile=dockerfile,
        repository=repository,
        tag=source.short_sha,
        build_args=args,
        labels=labels,
        timeout_s=service.build.timeout_s,
        network=network,
    )


def contained_build_paths(checkout: str, context: str, dockerfile: str) -> tuple[str, str]:
    """The build context (absolute) and the Dockerfile (relative to it), symlinks resolved; a
    :class:`ConfigError` unless the context lies inside the checkout and the Dockerfile inside the context.

    Why: the docker SDK reads a Dockerfile outside the context from this host and sends its text to the
    engine, whose parse error then quotes it in the task log (``build.dockerfile: ../../etc/shadow`` did).
    The catalog refuses such paths as written; this check, after checkout and before any Docker call, is
    what guarantees no file but the repository's own reaches the engine (or an error message), since a
    symlink in the repository can point anywhere.
    """
    root = os.path.realpath(checkout)
    real_context = os.path.realpath(os.path.join(root, context))
    if not _inside(real_context, root):
        raise ConfigError("source.context", f"{context!r} resolves outside the checkout (through a symlink); "
                                            "it must be a directory of the repository")
    real_dockerfile = os.path.realpath(os.path.join(real_context, dockerfile))
    if not _inside(real_dockerfile, real_context) or real_dockerfile == real_context:
        raise ConfigError("build.dockerfile", f"{dockerfile!r} resolves outside the build context {context!r} "
                                              "(through a symlink); it must be a file inside it")
    return real_context, os.path.relpath(real_dockerfile, real_context)


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)


def engine_failure(what: str, exc: BaseException) -> StageFailed:
    """A failed call to the engine as one line: the error's own words, whitespace folded, cut short."""
    explanation = getattr(exc, "explanation", None) or str(exc) or type(exc).__name__
    text = " ".join(str(explanation).split())
    if len(text) > _ENGINE_ERROR_MAX:
        text = text[:_ENGINE_ERROR_MAX] + "..."
    return StageFailed(f"{what} failed: {type(exc).__name__}: {text}")


def build_kwargs(spec: ImageSpec) -> dict[str, Any]:
    """Arguments of ``APIClient.build`` for ``spec``."""
    return {
        "path": spec.context,
        "dockerfile": spec.dockerfile,
        "tag": spec.ref,
        "buildargs": dict(spec.build_args),
        "labels": dict(spec.labels),
        # The build API takes no cap_drop: RUN steps keep the engine's default capabilities, NET_RAW among them,
        # which on the host's network would read every loopback exchange (tokens, passwords). Without a network
        # of their own (no bridge on the hosts we target) they get none: a step that downloads fails, unless the
        # platform team grants the service's builds the host's network (grants: build_network: host).
        "network_mode": spec.network,
        "container_limits": {"memory": int(quantity(BUILD_MEMORY)), "memswap": int(quantity(BUILD_MEMORY))},  # no swap
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
    # Again here, for a spec not made by image_spec: the engine is only ever sent the context's own files.
    contained_build_paths(spec.context, ".", spec.dockerfile)
    log.info("build: %s from %s/%s", spec.ref, spec.context, spec.dockerfile)
    try:
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
    except ENGINE_ERRORS as exc:
        raise engine_failure(f"build of {spec.ref}", exc) from None
    return BuiltImage(
        ref=spec.ref,
        image_id=info["Id"],
        size_mb=round(info.get("Size", 0) / 2**20, 1),
        seconds=round(time.monotonic() - started, 2),
    )


def push_image(client: EngineClient, built: BuiltImage, spec: ImageSpec, auth: Mapping[str, str] | None = None) -> BuiltImage:
    """Push to the registry named in the repository; returns the image with its digest.

    :param auth: the registry's credentials for this push (``registry.auth_config``); None: the engine's own.
    """
    started = time.monotonic()
    digest = None
    try:
        auth_config = dict(auth) if auth else None
        for chunk in client.push(spec.repository, tag=spec.tag, stream=True, decode=True, auth_config=auth_config):
            if "error" in chunk:
                raise StageFailed(f"push of {spec.ref} failed: {chunk['error']}")
            digest = chunk.get("aux", {}).get("Digest", digest)
    except ENGINE_ERRORS as exc:
        raise engine_failure(f"push of {spec.ref}", exc) from None
    if not digest:
        raise StageFailed(f"push of {spec.ref} ended without a digest from the registry")
    log.info("push: %s@%s in %.1f s", spec.ref, digest, time.monotonic() - started)
    return BuiltImage(**{**built.to_dict(), "digest": digest, "pushed": True})
