"""The paths and names of a deployflow stack, read from the environment once, made absolute, and passed in.

``Settings.from_environ()`` is the one reading of the ``DEPLOYFLOW_*`` paths and names and of their defaults:
each command builds it once in ``main()`` and passes its values down (its options' defaults come from it), and
the Airflow adapters ask ``deployflow.airflow.settings``, which asks it. Every path is absolute: a relative one
a person gives is from the directory they ran the command in, and the defaults are under the checkout
(``$DEPLOYFLOW_HOME``), never under the working directory, since a container mounts the state directory by the
path this gives. docs/reference/settings.md lists every variable, its default, and who reads it.

A leaf: it imports nothing of deployflow, and no Airflow (the ledger's and the deployer's commands run without).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # the checkout holding this file (plugins/deployflow/settings.py)
DEFAULT_STACK = "local"
DEFAULT_REGISTRY = "127.0.0.1:5000"  # the host's registry container (deployflow.stack.containers)
DEFAULT_HAPROXY_IMAGE = "deployflow/haproxy:2"
DEFAULT_BASE_IMAGE = "deployflow/base:bookworm"
DEFAULT_DEPLOYER_IMAGE = "deployflow/deployer:latest"  # the stack sets the Variable to its build, by hash
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"  # the local stack's Prometheus

# The Airflow Variables the tasks read: what a worker on another host learns from Airflow, not from its own
# environment. The stack sets the first three (``AIRFLOW_VAR_<NAME>``, ``variable_env``).
REGISTRY_VARIABLE = "deployflow_registry"
BASE_IMAGE_VARIABLE = "deployflow_base_image"
DEPLOYER_IMAGE_VARIABLE = "deployflow_deployer_image"
PROMETHEUS_VARIABLE = "deployflow_prometheus_url"


def variable_env(name: str) -> str:
    """The environment variable that sets the Airflow Variable ``name``."""
    return f"AIRFLOW_VAR_{name.upper()}"


def absolute(path: str | Path) -> Path:
    """``path`` from the working directory, without ``..`` (the form a container's mount takes)."""
    return Path(os.path.abspath(path))


def sqlite_ledger_url(state_dir: Path) -> str:
    """The ledger where none is named: SQLite's ``ledger.db`` in the state directory."""
    return f"sqlite:///{state_dir / 'ledger.db'}"


PATHS = ("home", "state_dir", "workspace", "catalog_dir", "grants_file", "registry_credentials")


@dataclass(frozen=True)
class Settings:
    """What every command and task of one stack shares. Paths are made absolute here (a ``replace`` with a
    relative one too); ``named_ledger_url`` is $DEPLOYFLOW_LEDGER_URL, ``ledger_url`` the ledger to use."""

    home: Path
    state_dir: Path
    workspace: Path
    catalog_dir: Path
    grants_file: Path | None  # None: grants.yaml beside the catalog directory (catalog/grants_file.py)
    registry_credentials: Path
    stack: str = DEFAULT_STACK
    named_ledger_url: str | None = None
    registry: str = DEFAULT_REGISTRY
    haproxy_image: str = DEFAULT_HAPROXY_IMAGE
    base_image: str = DEFAULT_BASE_IMAGE
    prometheus_url: str | None = None  # None: Airflow asks its Variable; the deployer takes DEFAULT_PROMETHEUS_URL

    def __post_init__(self) -> None:
        for name in PATHS:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, absolute(getattr(self, name)))

    @property
    def ledger_url(self) -> str:
        """$DEPLOYFLOW_LEDGER_URL, else SQLite in the state directory."""
        return self.named_ledger_url or sqlite_ledger_url(self.state_dir)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Each variable where it is set (an empty one is unset), else its default. The same variables (and working
        directory and home) give the same, immutable, object: a DAG file's parse asks a dozen times, each reading
        paths made absolute."""
        given = tuple(sorted((name, value) for name, value in environ.items() if name.startswith("DEPLOYFLOW_") and value))
        return _from_given(cls, given, environ.get("BASE_IMAGE") or "", os.getcwd(), os.environ.get("HOME") or "")


@functools.lru_cache(maxsize=16)
def _from_given(cls: type[Settings], given_items: tuple[tuple[str, str], ...], base_image: str, cwd: str,
                home_dir: str) -> Settings:
    """:meth:`Settings.from_environ` for one set of variables (``cwd`` and ``home_dir``: what relative paths and
    ``Path.home()`` depend on, part of the cache's key)."""
    given = dict(given_items)
    home = absolute(given.get("DEPLOYFLOW_HOME", CHECKOUT))
    return cls(
        home=home,
        state_dir=given.get("DEPLOYFLOW_STATE", home / ".state"),
        workspace=given.get("DEPLOYFLOW_WORKSPACE", home / ".workspace"),
        catalog_dir=given.get("DEPLOYFLOW_CATALOG", home / "include" / "services"),
        grants_file=given.get("DEPLOYFLOW_GRANTS"),
        registry_credentials=given.get("DEPLOYFLOW_REGISTRY_CREDENTIALS",
                                       Path.home() / ".deployflow" / "registry" / "credentials.json"),
        stack=given.get("DEPLOYFLOW_STACK", DEFAULT_STACK),
        named_ledger_url=given.get("DEPLOYFLOW_LEDGER_URL"),
        registry=given.get("DEPLOYFLOW_REGISTRY", DEFAULT_REGISTRY),
        haproxy_image=given.get("DEPLOYFLOW_HAPROXY_IMAGE", DEFAULT_HAPROXY_IMAGE),
        base_image=base_image or DEFAULT_BASE_IMAGE,  # build.sh's name for it too
        prometheus_url=given.get("DEPLOYFLOW_PROMETHEUS_URL"),
    )
