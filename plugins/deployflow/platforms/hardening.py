"""The least privilege of every container a release starts, written once: no capabilities, no new privileges,
memory and pids limits, a user where one is chosen, and an image by digest or ID, never by a tag.

Every kind of container takes its options from ``hardening()``: instances (``docker_engine.py``, with the
catalog's ``resources``), the proxy (``routers/haproxy.py``), the load (``analysis/load_container.py``), the
deployer and the test containers (``airflow/hardened_docker.py``); a build gets what the build API allows
(``pipeline/build.py``). None of them adds a capability back: the proxy's front port is 1024 or above (the
catalog's lower bound), so HAProxy needs no NET_BIND_SERVICE, and nothing else binds, chowns or sends raw
packets. Without NET_RAW a container on the host network cannot sniff loopback traffic; it can still connect
to any service on 127.0.0.1, as any process of the host can.

The options' names are the docker SDK's, shared by ``containers.run`` / ``containers.create`` and
``APIClient.create_host_config``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from docker.errors import ImageNotFound

from deployflow.configuration import quantity

NO_NEW_PRIVILEGES = "no-new-privileges"  # setuid binaries and file capabilities give a process nothing more


@dataclass(frozen=True)
class Limits:
    """What one container may use: ``memory`` a quantity (``256Mi``), with no swap beyond it; ``pids`` processes
    and threads together."""

    memory: str
    pids: int


# The platform's own containers; an instance's limits are its environment's ``resources`` in the catalog.
DEPLOYER_LIMITS = Limits("512Mi", 256)  # Python with numpy and scipy (promote's watch), a thread or two per request
PROXY_LIMITS = Limits("256Mi", 256)  # HAProxy starts a thread per CPU
LOAD_LIMITS = Limits("256Mi", 64)  # the load generator: two threads
TEST_LIMITS = Limits("2Gi", 1024)  # a team's pytest suite: room for its own subprocesses and threads
BUILD_MEMORY = "2Gi"  # a build's RUN steps (the build API has no pids limit)


def hardening(limits: Limits, *, user: str | None = None, group_add: tuple[int, ...] = ()) -> dict[str, Any]:
    """The security options and limits of one container, as docker SDK arguments.

    :param user: ``uid:gid`` to run as; None keeps the image's own USER.
    :param group_add: supplementary groups (the Docker socket's, for the deployer).
    """
    memory = int(quantity(limits.memory))
    return {
        "cap_drop": ["ALL"],
        "security_opt": [NO_NEW_PRIVILEGES],
        "mem_limit": memory,
        "memswap_limit": memory,
        "pids_limit": limits.pids,
        **({"user": user} if user else {}),
        **({"group_add": [str(g) for g in group_add]} if group_add else {}),
    }


def owner(path: str | Path) -> str:
    """``uid:gid`` of ``path``'s owner: who the proxy runs as, beside the deployer that made its directory."""
    info = os.stat(path)
    return f"{info.st_uid}:{info.st_gid}"


RELEASE_USER = (10002, 10002)  # the deployer image's USER (include/images/deployer/Dockerfile)
NOT_HANDED_OVER = ("prometheus",)  # the stack's Prometheus writes its data as root, and only it reads them


def release_user(state: Path) -> str:
    """``uid:gid`` the deployer runs as: the owner of the state directory it shares with Airflow (whose files
    there are private to their owner: 0700, 0600), so it has exactly Airflow's access to them.

    Where Airflow runs as root, the state is first handed over to :data:`RELEASE_USER`: the directory and what
    root wrote in it since (prepare's configurations, a recovery's records and proxy files) are chowned to it,
    so the deployer and the proxy it starts never run as root; root (Airflow) keeps its access regardless. A
    non-root Airflow owns the state itself and changes nothing.
    """
    if os.geteuid() == 0:
        uid, gid = RELEASE_USER
        for directory, subdirectories, files in os.walk(state):
            if directory == str(state):
                subdirectories[:] = [d for d in subdirectories if d not in NOT_HANDED_OVER]
            for path in (directory, *(os.path.join(directory, f) for f in files)):
                try:
                    info = os.lstat(path)
                    if (info.st_uid, info.st_gid) != RELEASE_USER:
                        os.lchown(path, uid, gid)
                except FileNotFoundError:  # another release's step replaced it since the walk listed it (a .tmp renamed)
                    continue
    return owner(state)


def owned_like(directory: Path, paths: list[Path]) -> None:
    """Give ``paths`` ``directory``'s owner where this process is root (a recovery run on the host writes the
    proxy's files itself): the proxy runs as that owner, and must read its configuration and make its socket."""
    if os.geteuid() == 0:
        info = os.stat(directory)
        for path in paths:
            os.lchown(path, info.st_uid, info.st_gid)


def socket_group(path: str) -> tuple[int, ...]:
    """The group of the Docker socket at ``path`` where this host has it (the deployer reaches the engine
    through it, as a member of its group rather than as root); none where the socket is on another host."""
    try:
        return (os.stat(path).st_gid,)
    except OSError:
        return ()


class ImageEngine(Protocol):
    """The part of ``docker.APIClient`` that pins an image (``DockerClient.api`` is one)."""

    def inspect_image(self, image: str) -> dict[str, Any]: ...
    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> Any: ...


def is_pinned(image: str) -> bool:
    """Whether ``image`` names its content: ``repo@sha256:...`` or an image ID ``sha256:...``."""
    return "@sha256:" in image or image.startswith("sha256:")


def pinned(engine: ImageEngine, image: str) -> str:
    """What to create a container from: ``image`` itself when it is pinned (see ``is_pinned``), else the ID
    the engine has for that tag now, pulled first where the engine lacks it; a tag that moves later moves
    nothing already started."""
    if is_pinned(image):
        return image
    try:
        return engine.inspect_image(image)["Id"]
    except ImageNotFound:
        engine.pull(image)
        return engine.inspect_image(image)["Id"]
