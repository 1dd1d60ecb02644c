"""Bring an environment back to its last promoted versions, from the ledger alone: no Airflow needed.

    python -m deployflow.ledger recover --environment dev [--service sample-app] [--url URL] [--state DIR]
                                        [--docker-host CONNECTION]

For each service of the catalog in the environment (or the one named): the last release the ledger has
with outcome ``promoted`` there, by digest from the registry where the ledger has one (``repo@sha256:...``:
exactly what ran, whatever the tag points at now), with that release's stored configuration (restored from a
backup when the host lost it; a missing one is refused, never started without), as a first deploy through
the rollout engine: prepare, health (the catalog's checks), shift, promote. On a host that still serves the
version it does nothing; on one that serves another, it is a release of that version with the environment's
strategy. Prints per service what came back and the seconds it took, then a total.

Exit codes: 0 every service came back (or had nothing to bring back), 1 one or more did not (each says
why), 2 bad input. Environment (deployflow.settings): DEPLOYFLOW_CATALOG, DEPLOYFLOW_STACK, DEPLOYFLOW_STATE,
DEPLOYFLOW_LEDGER_URL, DEPLOYFLOW_HAPROXY_IMAGE, DEPLOYFLOW_PROMETHEUS_URL; it works from any directory. Kubernetes
environments are refused (see docs/concepts/ledger.md). It runs on the environment's Docker host against the local engine:
without ``--docker-host`` it brings back the services that name no docker_host there, with ``--docker-host
CONN`` those whose docker_host is CONN; the others are left, each with a line saying where to run it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa

from deployflow import health
from deployflow.catalog import Service, load_catalog
from deployflow.platforms.hardening import release_user
from deployflow.configuration import release_version
from deployflow.errors import ConfigError, DeployflowError
from deployflow.ledger import Ledger, ReleaseEntry
from deployflow.outcomes import Outcome as Ended  # this module's Outcome is a recovery's
from deployflow.deployer.wiring import rollout_of
from deployflow.pipeline.registry import RegistryCredentials, auth_config
from deployflow.platforms.base import Clients, NotHere, StackSettings
from deployflow.platforms.config_files import ConfigFiles
from deployflow.platforms.factory import site_for
from deployflow.rollout.engine import Rollout
from deployflow.settings import Settings, absolute


class Unrecoverable(Exception):
    """A service that cannot be brought back, and why (a sentence a person can act on)."""


@dataclass(frozen=True)
class Recovery:
    """What one service goes back to: the release version the engine runs, the image to pull, the release."""

    service: str
    environment: str
    version: str
    image: str
    config: str | None
    entry: ReleaseEntry

    def describe(self) -> str:
        config = f", configuration {self.config}" if self.config else ""
        return f"{self.version} ({self.image}{config}; promoted {self.entry.finished_at}, run {self.entry.run_id})"


def last_promoted(entries: Iterable[ReleaseEntry], environment: str) -> ReleaseEntry | None:
    """The release that served last: the latest promoted one there (a later rollback left it serving)."""
    promoted = [e for e in entries if e.environment == environment and e.outcome is Ended.PROMOTED]
    return promoted[-1] if promoted else None  # entries come in the order they finished


def pinned_image(image: str, digest: str | None) -> str:
    """``repo@digest`` when the registry's digest is known (the tag may have moved since), else the image as released."""
    if not digest:
        return image
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    repo = name.rsplit(":", 1)[0] if ":" in last else name  # a registry's port is not a tag
    return f"{repo}@{digest}"


def choose(service: str, environment: str, entries: Iterable[ReleaseEntry]) -> Recovery | None:
    """The recovery of one service from its ledger entries; None: never promoted there, nothing to bring back."""
    entry = last_promoted(entries, environment)
    if entry is None:
        return None
    if not entry.image or not entry.version:
        raise Unrecoverable(f"its last promoted release (run {entry.run_id}) has no image in the ledger")
    return Recovery(service, environment, release_version(entry.version, entry.config or ""),
                    pinned_image(entry.image, entry.digest), entry.config, entry)


def check_config(recovery: Recovery, configs: ConfigFiles) -> None:
    """Refuse to start a release without the configuration it ran with (its secrets, its flags)."""
    if recovery.config and not configs.path(recovery.config).is_file():
        raise Unrecoverable(f"configuration {recovery.config} of {recovery.version} is not in the configuration store "
                            f"({configs.path(recovery.config)}); restore it from a backup "
                            f"(python -m deployflow.ledger restore --from DIR) or release again through Airflow; not started without it")


# ---- bringing one service back -------------------------------------------------------------

def ensure_image(client: Any, image: str, credentials: RegistryCredentials | None = None) -> str:
    """The image on this host, pulled from its registry (with ``credentials`` when they are that registry's) if
    the host does not have it; returns how it was found."""
    import docker

    try:
        client.images.get(image)
        return "on this host"
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image, auth_config=auth_config(credentials, image))
    except docker.errors.APIError as exc:
        raise Unrecoverable(f"image {image} is not on this host and its registry did not give it: {exc.explanation or exc}") from None
    return "pulled from the registry"


def bring_back(service: Service, recovery: Recovery, *, client: Any, rollout: Rollout,
               credentials: RegistryCredentials | None = None, session: health.Session | None = None, sleep: Callable[[float], None] = time.sleep,
               clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    """prepare, health, shift, promote: the Airflow DAG's deploy tasks, in one process, through ``rollout`` (the
    engine for this version on the environment's site). Rolls back on failure."""
    import requests

    env = service.environments[recovery.environment]
    pulled = ensure_image(client, recovery.image, credentials)
    try:
        prepared = rollout.prepare()
        if not prepared["already_live"]:
            h = env.health
            verdict = health.wait_healthy(session or requests.Session(), prepared["instances"], list(h.paths()),
                                          consecutive=h.consecutive, interval_s=h.interval_s, timeout_s=h.timeout_s,
                                          clock=clock, sleep=sleep)
            if not verdict.healthy:
                raise Unrecoverable(f"{recovery.version} is {verdict.reason()}")
        rollout.shift()
        rollout.promote()
    except (DeployflowError, Unrecoverable) as exc:
        try:
            rollout.rollback()
        except DeployflowError as error:
            raise Unrecoverable(f"{exc}; and the rollback failed: {error}") from None
        raise Unrecoverable(str(exc)) from None
    return {"already_live": prepared["already_live"], "image": pulled}


# ---- the command ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    service: str
    ok: bool
    line: str
    nothing: bool = False  # never promoted there


def recover(services: list[Service], environment: str, ledger: Ledger, *, settings: StackSettings,
            client_for: Callable[[], Any], clock: Callable[[], float] = time.monotonic,
            docker_host: str | None = None, credentials: RegistryCredentials | None = None,
            prometheus_url: str | None = None) -> list[Outcome]:
    """:param docker_host: the connection id of the Docker host this runs on (None: the local engine's own
        services, those without a docker_host); a service on another host is left to a recover run there.
    :param credentials: the registry's, for pulling an image this host no longer has.
    :param prometheus_url: where promote's watch reads metrics (None: the local stack's Prometheus)."""
    outcomes = []
    for service in services:
        started = clock()
        name = f"{service.name} in {environment}"
        try:
            site = site_for(service, environment, clients=Clients(docker=client_for), settings=settings)
            try:
                site.check_recoverable(docker_host)
            except NotHere as exc:
                outcomes.append(Outcome(service.name, True, f"{name}: {exc}"))
                continue
            recovery = choose(service.name, environment, ledger.entries(service=service.name, environment=environment))
            if recovery is None:
                outcomes.append(Outcome(service.name, True, f"{name}: nothing to bring back (no promoted release in the ledger)",
                                        nothing=True))
                continue
            check_config(recovery, site.configs())
            rollout = rollout_of(site, service, service.environments[environment], version=recovery.version,
                                 image=recovery.image, prometheus_url=prometheus_url)
            done = bring_back(service, recovery, client=client_for(), rollout=rollout, credentials=credentials)
        except Exception as exc:  # noqa: BLE001 - one service's failure (an engine error too) must not stop the others
            outcomes.append(Outcome(service.name, False, f"{name}: NOT brought back after {clock() - started:.1f} s: {exc}"))
            continue
        how = "already served it; nothing to do" if done["already_live"] else f"healthy and serving; image {done['image']}"
        outcomes.append(Outcome(service.name, True, f"{name}: back on {recovery.describe()} in {clock() - started:.1f} s ({how})"))
    return outcomes


def _services(catalog: dict[str, Service], environment: str, only: str | None) -> list[Service]:
    if only is not None:
        if only not in catalog:
            raise ConfigError("--service", f"{only!r} is not valid; valid values are {', '.join(sorted(catalog))}")
        if environment not in catalog[only].environments:
            raise ConfigError("--environment", f"{environment!r} is not valid for {only}; valid values are "
                              f"{', '.join(catalog[only].environments)}")
        return [catalog[only]]
    chosen = [s for _, s in sorted(catalog.items()) if environment in s.environments]
    if not chosen:
        valid = sorted({e for s in catalog.values() for e in s.environments})
        raise ConfigError("--environment", f"{environment!r} is not valid; valid values are {', '.join(valid)}")
    return chosen


def parse_args(argv: list[str], settings: Settings) -> argparse.Namespace:
    """The options over ``settings``; ``settings`` in the result is what they make of it (the stack, the state
    directory, absolute: the proxy's container mounts it by this path), ``url`` the ledger."""
    parser = argparse.ArgumentParser(prog="python -m deployflow.ledger recover", description=__doc__.split("\n\n")[0])
    parser.add_argument("--environment", required=True)
    parser.add_argument("--service", help="only this service (default: every service of the catalog in the environment)")
    parser.add_argument("--catalog", type=absolute, default=settings.catalog_dir,
                        help="the catalog directory (default $DEPLOYFLOW_CATALOG, else include/services in the deployflow checkout)")
    parser.add_argument("--state", type=absolute, default=settings.state_dir,
                        help="the state directory (default $DEPLOYFLOW_STATE, else .state in the deployflow checkout, as "
                        "Airflow's; a relative one is from the working directory)")
    parser.add_argument("--stack", default=settings.stack, help="container names' prefix (default $DEPLOYFLOW_STACK, else local)")
    parser.add_argument("--docker-host", help="the connection id of the docker_host this machine is (default: the "
                        "local engine, for the environments that name none)")
    parser.add_argument("--url", help="the ledger (default $DEPLOYFLOW_LEDGER_URL, else SQLite in the state directory)")
    args = parser.parse_args(argv)
    args.settings = replace(settings, stack=args.stack, state_dir=args.state, catalog_dir=args.catalog)  # the options win
    args.url = args.url or args.settings.ledger_url
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv, Settings.from_environ())
    settings = args.settings
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    release_user(settings.state_dir)  # as root, the state is the deployer's user's first: the proxies it starts run as that user
    started = time.monotonic()
    try:
        services = _services(load_catalog(settings.catalog_dir), args.environment, args.service)
        ledger = Ledger(args.url)
    except (ConfigError, ValueError) as exc:
        print(f"recover: {exc}", file=sys.stderr)
        return 2

    def docker_client() -> Any:
        import docker

        return docker.from_env()

    outcomes = recover(services, args.environment, ledger, settings=StackSettings.of(settings), client_for=docker_client,
                       docker_host=args.docker_host, credentials=RegistryCredentials.read(settings.registry_credentials),
                       prometheus_url=settings.prometheus_url)
    for outcome in outcomes:
        print(outcome.line, file=sys.stdout if outcome.ok else sys.stderr, flush=True)
    failed = [o.service for o in outcomes if not o.ok]
    if all(o.nothing for o in outcomes):  # an empty ledger: most likely not restored yet
        print(f"recover {args.environment}: the ledger ({sa.engine.make_url(ledger.url).render_as_string()}) has no promoted release there; restore it first "
              "(python -m deployflow.ledger restore --from DIR)", file=sys.stderr)
        return 1
    print(f"recover {args.environment}: {len(outcomes) - len(failed)} of {len(outcomes)} service(s) back in "
          f"{time.monotonic() - started:.1f} s" + (f"; not brought back: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
