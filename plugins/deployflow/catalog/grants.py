"""Grants: what the platform team lets each service reach, kept outside the catalog directory.

A service's catalog file is one team's input. It *names* what the service wants (the Connections and
Variables its secrets and channels read, its Docker host and queue, its Kubernetes connection, namespace
and service account, the repository it builds from); the grants file, owned by the platform team, says
what it *may* have. A catalog file that names anything not granted is refused at load with an error
naming the field and the grant that is missing, and the same check runs again where a task reads the
value (a grant withdrawn after load stops the next release).

The file is ``$DEPLOYFLOW_GRANTS``, else ``grants.yaml`` beside the catalog directory (the shipped one
is ``include/grants.yaml``, beside ``include/services``); it may not be inside the catalog directory.
No file means the defaults only::

    services:
      checkout:                       # one service
        connections: [payments_db]    # an id, or a prefix ending in '*'
        variables: [checkout_*]
        docker_hosts: [docker_stage]  # environments.<env>.docker_host connections
        queues: [stage-host]          # ... and their Celery queues
        kubernetes: {connections: [k8s_prod], namespaces: [payments-*], service_accounts: [payments-deployer]}
        repositories: ["https://git.example.com/payments/"]   # URL or absolute path prefixes
        deployers: {prod: [alice, bob]}                       # who may release to an environment
        build_network: host           # its builds' RUN steps on the host's network (default: none)
    teams:
      payments:                       # the same grants for every service of a team
        services: [checkout, billing]   # names, or prefixes ending in '*' ("*": every service)
        connections: [payments_*]

Every service is also granted, always, what is named after it: Connections and Variables whose id
starts with ``<service>_`` (``sample-app_`` or ``sample_app_``), the Kubernetes namespaces
``<service>`` and ``<service>-*``, the service accounts ``deployflow-deployer``, ``<service>`` and
``<service>-*``, the ``kubernetes_default`` connection, the local Docker engine, and repositories at
relative paths inside the deployflow checkout. ``deployers`` unset for an environment lets anyone who
may trigger the DAG release to it; ``@schedule`` in the list lets the nightly schedule.

The stack's own secrets can never be granted: Connection and Variable ids starting with
``deployflow_`` or ``airflow`` (the ledger's database, the configuration key, the registry's
credentials...), whatever pattern a grant writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from deployflow.catalog.model import Service
from deployflow.configuration import SecretRef
from deployflow.errors import ConfigError, shown

GRANTS_ENV = "DEPLOYFLOW_GRANTS"
SCHEDULE = "@schedule"  # in deployers: the nightly schedule may release there
RESERVED = ("deployflow_", "airflow")  # the stack's own Connections and Variables
KINDS = ("connections", "variables", "docker_hosts", "queues", "kubernetes.connections", "kubernetes.namespaces",
         "kubernetes.service_accounts", "repositories")
_NAMED = {"connections": "connection", "variables": "variable", "docker_hosts": "Docker host", "queues": "queue",
          "kubernetes.connections": "Kubernetes connection", "kubernetes.namespaces": "namespace",
          "kubernetes.service_accounts": "service account", "repositories": "repository"}


@dataclass(frozen=True)
class Grant:
    """One entry of the file: patterns by kind, and who may release to which environment."""

    patterns: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    deployers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    build_network: str = "none"


@dataclass(frozen=True)
class ServiceGrants:
    """What one service may reach: its defaults and every entry of the file that names it."""

    service: str
    source: str  # the grants file (saying so where there is none: the defaults only)
    entries: tuple[tuple[str, Grant], ...]  # (where in the file, the entry)

    def allows(self, kind: str, value: str) -> bool:
        if _reserved(kind, value):
            return False
        if kind == "repositories":
            return _repository_allowed(value, [p for _, g in self.entries for p in g.patterns.get(kind, ())])
        return any(_matches(p, value) for p in self.defaults(kind)) or any(
            _matches(p, value) for _, g in self.entries for p in g.patterns.get(kind, ()))

    def defaults(self, kind: str) -> tuple[str, ...]:
        name, snake = self.service, self.service.replace("-", "_")
        return {
            "connections": (f"{name}_*", f"{snake}_*"), "variables": (f"{name}_*", f"{snake}_*"),
            "kubernetes.connections": ("kubernetes_default", f"{name}_*", f"{snake}_*"),
            "kubernetes.namespaces": (name, f"{name}-*"),
            "kubernetes.service_accounts": ("deployflow-deployer", name, f"{name}-*"),
        }.get(kind, ())

    @property
    def build_network(self) -> str:
        """The network of the service's builds: ``host`` where an entry grants it, else ``none``."""
        return "host" if any(g.build_network == "host" for _, g in self.entries) else "none"

    def deployers(self, environment: str) -> tuple[str, ...] | None:
        """Who may release to ``environment``; None when no entry restricts it."""
        named = [g.deployers[environment] for _, g in self.entries if environment in g.deployers]
        return tuple(sorted({u for users in named for u in users})) if named else None

    def require(self, kind: str, value: str, at: str) -> None:
        """Refuse ``value`` (named at ``at`` of the service's file) unless granted, saying which grant is missing."""
        if self.allows(kind, value):
            return
        what = _NAMED[kind]
        if _reserved(kind, value):
            raise ConfigError(at, f"names the {what} {shown(value)}, one of the stack's own (ids starting with "
                                  f"{' or '.join(RESERVED)}), which no service can be granted")
        raise ConfigError(at, f"names the {what} {shown(value)}, which {self.service} is not granted; the platform team "
                              f"grants it in {self.source} under services.{self.service}.{kind} (or a team's)")

    def require_deployer(self, environment: str, user: str | None, *, scheduled: bool) -> None:
        allowed = self.deployers(environment)
        if allowed is None:
            return
        who = SCHEDULE if scheduled else user
        if who not in allowed:
            raise ConfigError("environment", f"{shown(who or '(nobody)')} may not release {self.service} to {environment}; "
                                             f"its deployers are {', '.join(allowed) or 'nobody'} ({self.source}, "
                                             f"services.{self.service}.deployers.{environment} or a team's)")


@dataclass(frozen=True)
class Grants:
    source: str
    services: Mapping[str, Grant] = field(default_factory=dict)
    teams: Mapping[str, tuple[tuple[str, ...], Grant]] = field(default_factory=dict)

    def of(self, service: str) -> ServiceGrants:
        entries = [(f"teams.{team}", g) for team, (names, g) in sorted(self.teams.items())
                   if any(_matches(n, service) for n in names)]
        if service in self.services:
            entries.insert(0, (f"services.{service}", self.services[service]))
        return ServiceGrants(service, self.source, tuple(entries))


def check_service(service: Service, grants: ServiceGrants) -> None:
    """Refuse the first thing ``service`` names that it is not granted (a ConfigError naming the field)."""
    for kind, value, at in named_in(service):
        grants.require(kind, value, at)


def named_in(service: Service) -> Iterator[tuple[str, str, str]]:
    """Every granted thing a service's file names: (kind, value, the field that names it)."""
    yield "repositories", service.source.repo, "source.repo"
    if service.source.credentials:
        yield "connections", service.source.credentials, "source.credentials.connection"
    for i, channel in enumerate(service.notifications):
        yield "connections", channel.connection, f"notifications[{i}].connection"
    for env in service.environments.values():
        at = f"environments.{env.name}"
        for i, channel in enumerate(env.notifications):
            yield "connections", channel.connection, f"{at}.notifications[{i}].connection"
        for name, ref in env.config.secrets.items():
            yield from _secret(ref, f"{at}.config.secrets.{name}")
        for name, content in env.config.files.items():
            if isinstance(content, SecretRef):
                yield from _secret(content, f"{at}.config.files.{name}.secret")
        if env.docker_host is not None:
            yield "docker_hosts", env.docker_host.connection, f"{at}.docker_host.connection"
            yield "queues", env.docker_host.queue, f"{at}.docker_host.queue"
        if env.kubernetes is not None:
            yield "kubernetes.connections", env.kubernetes.connection_id, f"{at}.kubernetes.connection_id"
            yield "kubernetes.namespaces", env.kubernetes.namespace, f"{at}.kubernetes.namespace"
            yield "kubernetes.service_accounts", env.kubernetes.service_account, f"{at}.kubernetes.service_account"


def _secret(ref: SecretRef, at: str) -> Iterator[tuple[str, str, str]]:
    if ref.kind in ("connection", "variable"):
        yield f"{ref.kind}s", ref.name, f"{at}.{ref.kind}"


def _reserved(kind: str, value: str) -> bool:
    """The stack's own Connection or Variable: never granted, whatever a pattern says."""
    return kind in ("connections", "variables") and value.startswith(RESERVED)


def _matches(pattern: str, value: str) -> bool:
    return value.startswith(pattern[:-1]) if pattern.endswith("*") else value == pattern


def _repository_allowed(repo: str, prefixes: list[str]) -> bool:
    remote = "://" in repo or ":" in repo.split("/")[0]  # a URL, or scp's user@host:path (any user)
    if not remote and not repo.startswith("/"):
        return True  # a relative path inside the deployflow checkout (parsing refused '..')
    if repo.startswith("/"):
        repo = os.path.normpath(repo)
    return any(repo == p.rstrip("/") or repo.startswith(p if p.endswith(("/", ":")) else f"{p}/") for p in prefixes)
