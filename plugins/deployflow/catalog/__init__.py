"""The service catalog: one YAML file per service, loaded into validated dataclasses.

A bad file raises :class:`ConfigError` naming the file, the dotted path of the
field, and the valid values, so a typo fails DAG import with a sentence a person
can act on instead of a KeyError deep inside a task.

- ``model.py``: the valid values (environments, strategies, platforms, patterns)
  and the frozen dataclasses a service is made of (``Service``, ``Environment``,
  ``Kubernetes``, ``Analysis``...). Metric directions and no-data policies are
  the judge's (``deployflow.judge``), imported here.
- ``fields.py``: ``Fields``, which reads one mapping of a document and refuses a
  bad value with its dotted path.
- ``parsing.py``: ``parse_service`` and one parser per block of the document;
  ``judging.py`` the parsers of the judged blocks (``analysis``, ``post_promotion``).
- ``loading.py``: where the catalog is (``project_root``, ``catalog_dir``) and
  ``load_service`` / ``load_catalog``, whose errors name the file.
- ``hosts.py``: an environment's ``docker_host`` (the engine it runs on, its worker's Celery queue).
- ``refs.py``: git ref names by git's own rules (``check_git_ref``), for the catalog and the release request.
- ``urls.py``: every URL shape a service is reached at: the Docker host, a Kubernetes
  Service through the catalog's ``url`` template, cluster DNS (the platforms' sites
  pick theirs: ``Site.front_url``).

Everything the rest of deployflow uses is importable from ``deployflow.catalog``.
"""

from __future__ import annotations

from deployflow.catalog.loading import catalog_dir, load_catalog, load_service, project_root
from deployflow.catalog.model import (
    DEFAULT_METRICS,
    DEFAULT_STRATEGY,
    DIRECTIONS,
    ENVIRONMENTS,
    METRIC_KINDS,
    NODATA_POLICIES,
    ON_FINISH_ACTIONS,
    PLATFORMS,
    STRATEGIES,
    SUITES,
    TRAFFIC_MODES,
    WATCH_NODATA_POLICIES,
    Analysis,
    BlueGreen,
    Build,
    Canary,
    DockerHost,
    Environment,
    Health,
    Kubernetes,
    MetricQuery,
    Nightly,
    PostPromotion,
    Rolling,
    Service,
    Source,
    Tests,
)
from deployflow.catalog.parsing import parse_service
from deployflow.catalog.refs import GIT_REF_PATTERN, check_git_ref

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_STRATEGY",
    "DIRECTIONS",
    "ENVIRONMENTS",
    "GIT_REF_PATTERN",
    "METRIC_KINDS",
    "NODATA_POLICIES",
    "ON_FINISH_ACTIONS",
    "PLATFORMS",
    "STRATEGIES",
    "SUITES",
    "TRAFFIC_MODES",
    "WATCH_NODATA_POLICIES",
    "Analysis",
    "BlueGreen",
    "Build",
    "Canary",
    "DockerHost",
    "Environment",
    "Health",
    "Kubernetes",
    "MetricQuery",
    "Nightly",
    "PostPromotion",
    "Rolling",
    "Service",
    "Source",
    "Tests",
    "catalog_dir",
    "check_git_ref",
    "load_catalog",
    "load_service",
    "parse_service",
    "project_root",
]
