"""The registry's credentials as the pipeline uses them: to push a built image, and to pull it onto an engine.

The stack's registry takes one user (``REGISTRY_USER``) with a generated password. The host keeps both, with
the registry's address, in one 0600 JSON file (``credentials_file()``: written by ``deployflow.stack``, read by
the Airflow processes of the same host and by ``recover``); a worker on another host reads the same from the
Airflow connection ``deployflow_registry`` (``airflow/registry.py``). The password goes to a Docker engine only,
as the ``auth_config`` of one push or pull of an image of that registry: never to another registry, a log
line, an XCom, an image or a container's environment.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from docker.errors import ImageNotFound

from deployflow.errors import StageFailed
from deployflow.pipeline.build import ENGINE_ERRORS, engine_failure
from deployflow.settings import Settings

REGISTRY_USER = "deployflow"
REGISTRY_CONNECTION = "deployflow_registry"  # the Airflow connection (type docker) of a worker on another host


def credentials_file() -> Path:
    """Where this host keeps the registry's credentials: ``$DEPLOYFLOW_REGISTRY_CREDENTIALS``, else
    ``~/.deployflow/registry/credentials.json``. One per host (its user), not per stack or checkout: every
    stack of the host pushes to the one registry container. A path, never a value."""
    return Settings.from_environ().registry_credentials


@dataclass(frozen=True)
class RegistryCredentials:
    """A registry's user and password; ``registry`` is its ``host:port`` as image references name it."""

    registry: str
    username: str
    password: str = field(repr=False)

    @classmethod
    def read(cls, path: Path) -> RegistryCredentials | None:
        """The credentials in ``path`` (the stack's JSON file); None when there is no such file."""
        try:
            stored = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return cls(registry=stored["registry"], username=stored["username"], password=stored["password"])

    def to_json(self) -> str:
        return json.dumps({"registry": self.registry, "username": self.username, "password": self.password})

    def connection(self) -> dict[str, Any]:
        """As the Airflow connection ``deployflow_registry`` (``airflow connections import``'s form): the docker
        provider's type, with the registry's host and port, as DockerHook logs in."""
        host, _, port = self.registry.rpartition(":") if ":" in self.registry else (self.registry, "", "")
        return {"conn_type": "docker", "host": host, **({"port": int(port)} if port else {}),
                "login": self.username, "password": self.password}


def registry_of(image: str) -> str | None:
    """The registry an image reference names (``127.0.0.1:5000/shop:v1`` -> ``127.0.0.1:5000``); None for
    Docker Hub's (``shop:v1``, ``library/shop``), as the engine reads a reference."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def auth_config(credentials: RegistryCredentials | None, image: str) -> dict[str, str] | None:
    """The engine's ``auth_config`` for a push or pull of ``image``: the credentials when the image is of their
    registry, else None (the engine's own, if any): the password never goes to another registry."""
    if credentials is None or registry_of(image) != credentials.registry:
        return None
    return {"username": credentials.username, "password": credentials.password}


class PullingClient(Protocol):
    """The part of ``docker.APIClient`` a pull uses."""

    def inspect_image(self, image: str) -> dict[str, Any]: ...
    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> Any: ...


def pull_image(client: PullingClient, image: str, auth: Mapping[str, str] | None) -> str:
    """``image`` onto the client's engine unless it has it; how it was found ("on this host", "pulled").

    :raises StageFailed: the registry did not give it (refused, unknown, unreachable), in one line.
    """
    try:
        client.inspect_image(image)
        return "on this host"
    except ImageNotFound:
        pass
    except ENGINE_ERRORS as exc:
        raise engine_failure(f"pull of {image}", exc) from None
    try:
        for chunk in client.pull(image, stream=True, decode=True, auth_config=dict(auth) if auth else None):
            if "error" in chunk:
                raise StageFailed(f"pull of {image} failed: {' '.join(str(chunk['error']).split())}")
    except ENGINE_ERRORS as exc:
        raise engine_failure(f"pull of {image}", exc) from None
    return "pulled"
