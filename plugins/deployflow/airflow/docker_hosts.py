"""Which Docker engine an environment's deploy steps talk to: the local one, or its ``docker_host``'s.

An environment that names a ``docker_host`` (the catalog's ``environments.<env>.docker_host``) is reached
through an Airflow connection of type ``docker`` whose ``host`` is the engine's URL:

- ``unix:///run/docker-stage.sock``: a socket on the worker's own host;
- ``tcp://stage.example.com:2376``: with TLS from the extras ``tls_ca_cert``, ``tls_client_cert`` and
  ``tls_client_key`` (file paths on the worker), ``tls_verify`` and ``tls_hostname``, the names of
  DockerOperator's arguments;
- ``ssh://deploy@stage.example.com``: the engine's socket on that host, through ssh.

The extra ``socket`` is the engine's socket on its own host (default: the ``unix://`` URL's path, else
``/var/run/docker.sock``): the deployer container, which runs on that engine, gets it mounted.
The connection is read when a task runs, never at DAG parse; a missing or malformed one fails the task,
naming the connection and the environment. Nothing read here is a secret (TLS files are paths).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.sdk.exceptions import AirflowFailException

from deployflow.airflow.settings import docker_url
from deployflow.catalog import Service
from deployflow.errors import ConfigError

if TYPE_CHECKING:
    import docker

LOCAL_SOCKET = "/var/run/docker.sock"
SCHEMES = ("unix", "tcp", "ssh")
TLS_FILES = ("tls_ca_cert", "tls_client_cert", "tls_client_key")


@dataclass(frozen=True)
class EngineAddress:
    """How to reach one Docker engine: its URL, its TLS files, and its socket on its own host.

    ``connection`` is the Airflow connection it was read from (None: the local engine)."""

    url: str
    socket: str = LOCAL_SOCKET
    tls_ca_cert: str | None = None
    tls_client_cert: str | None = None
    tls_client_key: str | None = None
    tls_verify: bool = True
    tls_hostname: str | None = None
    connection: str | None = None

    @property
    def tls(self) -> bool:
        return self.tls_ca_cert is not None

    def describe(self) -> str:
        """For a log line: the connection, the URL (never a password), and TLS."""
        parts = urlsplit(self.url)
        url = self.url.replace(f":{parts.password}@", ":***@") if parts.password else self.url
        via = f"connection {self.connection!r}: " if self.connection else "the local engine: "
        return f"{via}{url}" + (f" (TLS, verify={self.tls_verify})" if self.tls else "")


def local_engine() -> EngineAddress:
    """The engine of wherever the task runs: ``$DOCKER_HOST``, else the local socket (what deployflow always did)."""
    return EngineAddress(url=docker_url())


def address_of(connection: str, environment: str, *, conn_type: str | None, host: str | None, port: int | None = None,
               extra: dict[str, Any] | None = None) -> EngineAddress:
    """An engine address from a Docker connection's fields; :class:`ConfigError` names the connection, the field
    and the environment whose ``docker_host`` it is."""
    where = f"connection {connection!r} (the docker_host of {environment})"
    extra = extra or {}
    if conn_type != "docker":
        raise ConfigError(f"{where}.conn_type", f"{conn_type!r} is not valid; must be 'docker'")
    if not host:
        raise ConfigError(f"{where}.host", "is required: the engine's URL (unix:///path.sock, tcp://host:2376 or ssh://user@host)")
    parts = urlsplit(host)
    if parts.scheme not in SCHEMES or (parts.scheme == "unix" and not parts.path) or (parts.scheme != "unix" and not parts.hostname):
        raise ConfigError(f"{where}.host", f"{host!r} is not valid; valid schemes are unix:///path.sock, "
                                           "tcp://host:port and ssh://user@host")
    url = host
    if port and parts.scheme == "tcp" and parts.port is None:
        url = f"{host.rstrip('/')}:{port}"  # Airflow's form has the port in its own field
    socket = extra.get("socket") or (parts.path if parts.scheme == "unix" else LOCAL_SOCKET)
    if not isinstance(socket, str) or not socket.startswith("/"):
        raise ConfigError(f"{where}.extra.socket", f"{socket!r} is not valid; must be an absolute path (the engine's "
                                                   "socket on its own host)")
    given = [name for name in TLS_FILES if extra.get(name)]
    if given and parts.scheme != "tcp":
        raise ConfigError(f"{where}.extra.{given[0]}", f"is only for tcp:// hosts (this one is {parts.scheme}://)")
    if given and len(given) != len(TLS_FILES):
        missing = [name for name in TLS_FILES if name not in given]
        raise ConfigError(f"{where}.extra.{missing[0]}", f"is required with {', '.join(given)}: TLS needs "
                                                         f"{', '.join(TLS_FILES)} (file paths on the worker)")
    for name in given:
        if not isinstance(extra[name], str) or not extra[name].startswith("/"):
            raise ConfigError(f"{where}.extra.{name}", "must be an absolute file path on the worker (the file, not its contents)")
    verify = _boolean(extra.get("tls_verify", True), f"{where}.extra.tls_verify")
    hostname = extra.get("tls_hostname")
    if hostname is not None and not isinstance(hostname, str):
        raise ConfigError(f"{where}.extra.tls_hostname", f"must be a host name, got {hostname!r}")
    files = {name: extra[name] for name in given}
    return EngineAddress(url=url, socket=socket, tls_verify=verify, tls_hostname=hostname or None, connection=connection, **files)


def _boolean(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ConfigError(path, f"{value!r} is not valid; valid values are true, false")


def engine(service: Service, environment_name: str) -> EngineAddress:
    """The engine of the environment's deploy steps: its ``docker_host``'s, read from its connection now,
    else the local engine (also for an environment the service does not have: the step fails on its own).

    :raises AirflowFailException: the connection is missing or malformed; the message names it and the environment.
    """
    env = service.environments.get(environment_name)
    if env is None or env.docker_host is None:
        return local_engine()
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    connection = env.docker_host.connection
    label = f"{service.name}'s {environment_name}"
    try:
        conn = Connection.get(connection)
    except AirflowNotFoundException:
        raise AirflowFailException(
            f"connection {connection!r} (the docker_host of {label}) is not defined: add a connection of type docker "
            f"whose host is the engine's URL (AIRFLOW_CONN_{connection.upper().replace('.', '_').replace('-', '_')} "
            "or `airflow connections add`)") from None
    try:
        extra = json.loads(conn.extra) if conn.extra else {}
        if not isinstance(extra, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise AirflowFailException(f"connection {connection!r} (the docker_host of {label}).extra: is not a JSON "
                                   f"object ({type(exc).__name__})") from None
    try:
        address = address_of(connection, label, conn_type=conn.conn_type, host=conn.host, port=conn.port, extra=extra)
    except ConfigError as exc:
        raise AirflowFailException(str(exc)) from None
    for name in TLS_FILES:
        path = getattr(address, name)
        if path is not None and not os.path.isfile(path):
            raise AirflowFailException(f"connection {connection!r} (the docker_host of {label}).extra.{name}: {path} is "
                                       "not a file on this worker (the TLS files must be on the host that runs the step)")
    return address


def tls_config(address: EngineAddress) -> docker.tls.TLSConfig | bool:
    """The docker SDK's TLS settings of an address (False: no TLS). ``tls_hostname`` has no effect with
    docker>=7, which dropped ``assert_hostname``: the certificate must name the host of the URL."""
    if not address.tls:
        return False
    import docker

    return docker.tls.TLSConfig(ca_cert=address.tls_ca_cert, client_cert=(address.tls_client_cert, address.tls_client_key),
                                verify=address.tls_verify)


def docker_client(service: Service, environment_name: str) -> docker.DockerClient:
    """A docker SDK client of the environment's engine (``docker.from_env()`` for the local one)."""
    import docker

    address = engine(service, environment_name)
    if address.connection is None:
        return docker.from_env()
    # The ssh binary, not paramiko (not installed): the worker's ssh config and agent hold the keys.
    return docker.DockerClient(base_url=address.url, tls=tls_config(address), use_ssh_client=address.url.startswith("ssh://"))
