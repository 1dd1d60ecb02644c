"""What a catalog entry says: the valid values of its fields and one frozen dataclass per block.

The parser (``parsing.py``) builds these; the rest of deployflow only reads them.
The metric directions and no-data policies are the judge's, so that the catalog
accepts exactly what the judge can judge.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from deployflow.catalog import urls
from deployflow.configuration import Config, Resources
from deployflow.governance.freeze import FreezeWindow
from deployflow.governance.notifications import Channel
# Shared with the judge and governance; "as" re-exports them as catalog values.
from deployflow.policies import DIRECTIONS as DIRECTIONS
from deployflow.policies import ENVIRONMENTS as ENVIRONMENTS
from deployflow.policies import NODATA_POLICIES as NODATA_POLICIES
from deployflow.policies import WATCH_NODATA_POLICIES as WATCH_NODATA_POLICIES

STRATEGIES = ("rolling", "canary", "blue-green")
PLATFORMS = ("docker", "kubernetes")
SUITES = ("unit", "integration", "performance")
DEFAULT_STRATEGY = {"dev": "rolling", "staging": "canary", "prod": "blue-green"}
METRIC_KINDS = ("errors", "histogram", "series")
TRAFFIC_MODES = ("gateway", "replicas")
ON_FINISH_ACTIONS = ("delete_pod", "delete_succeeded_pod", "keep_pod")
APPROVAL_POSITIONS = ("deploy", "promote")  # the gate stands before the deploy steps, or before promote

# Matched whole (re.fullmatch, in Fields): with re.match, '$' would also take a trailing newline ("main\n").
# Git ref names have their own rules: refs.py.
SERVICE_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?")
HTTP_PATH = re.compile(r"/[A-Za-z0-9._~/-]*")
METRIC_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")
DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?")
HOSTNAME = re.compile(r"(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
CONNECTION_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")
# A Celery queue a worker can name on its command line: `airflow celery worker -q a,b` splits on commas.
# One line of visible text (a description, an owner): no control or format character (bidi overrides), 200 at most.
ONE_LINE = re.compile(r"[^\x00-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]{0,200}")
BUILD_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


@dataclass(frozen=True)
class Source:
    """Where the service's code is: a git URL or a local repository, and the build context in it."""

    repo: str
    context: str = "."
    default_ref: str = "HEAD"
    credentials: str | None = None  # the Airflow connection whose login and password git sends (https)

    def location(self, root: Path) -> str:
        """The repository as git can clone it; a relative path is taken from ``root``."""
        if "://" in self.repo or self.repo.startswith("git@") or os.path.isabs(self.repo):
            return self.repo
        return str((root / self.repo).resolve())


@dataclass(frozen=True)
class Build:
    dockerfile: str = "Dockerfile"
    args: Mapping[str, str] = field(default_factory=dict)
    timeout_s: int = 900


@dataclass(frozen=True)
class Tests:
    suites: tuple[str, ...] = SUITES
    coverage_threshold: int = 80
    coverage_source: str = "."
    timeout_s: int = 600


@dataclass(frozen=True)
class Health:
    """Where and how long to probe a new version before it gets traffic."""

    health: str = "/health"
    ready: str = "/ready"
    live: str = "/live"
    consecutive: int = 3
    interval_s: float = 1.0
    timeout_s: int = 60

    def paths(self) -> tuple[str, str, str]:
        return (self.health, self.ready, self.live)


@dataclass(frozen=True)
class BlueGreen:
    scale_down_delay_s: int = 30


@dataclass(frozen=True)
class Canary:
    steps: tuple[int, ...] = (10, 25, 50, 100)
    pause_s: int = 30
    replicas: int = 1


@dataclass(frozen=True)
class Rolling:
    """Batches of new instances; on Kubernetes, the Deployment's ``maxSurge``
    is the batch size and ``maxUnavailable`` is ``max_unavailable``."""

    batch_size: int = 1
    max_unavailable: int = 0


@dataclass(frozen=True)
class MetricQuery:
    """A metric the canary analysis judges. ``query`` is PromQL in which the text
    ``{selector}`` is replaced by one track's label matchers and ``{window}`` by
    the analysed range (plain text replacement: PromQL's own braces stay as they are).

    kinds: ``errors`` a request counter with a ``code`` label (judged as
    proportions of 5xx); ``histogram`` a latency histogram's ``sum by (le)``
    increase (judged per request); ``series`` any query, judged on its values
    step by step."""

    name: str
    kind: str
    query: str
    direction: str = "increase"
    critical: bool = False
    group: str = "default"


DEFAULT_METRICS = (
    # Errors are judged as proportions (5xx of all requests), the probes left out.
    MetricQuery("error_rate", "errors", 'http_requests_total{{selector},path!~"/(metrics|health|ready|live)"}',
                critical=True, group="errors"),
    # Latency: each request's bucket, from the histogram's increase over the window.
    MetricQuery("latency", "histogram",
                'sum by (le) (increase(http_request_duration_seconds_bucket{{selector},path!~"/(metrics|health|ready|live)"}[{window}]))',
                group="latency"),
)


@dataclass(frozen=True)
class Analysis:
    """Canary analysis (canary strategy): judge the canary against a baseline, interval by interval."""

    enabled: bool = True
    interval_s: int = 30
    intervals: int = 3
    baseline: bool = True
    load_rate: float = 0.0
    no_data: str = "fail"
    metrics: tuple[MetricQuery, ...] = DEFAULT_METRICS
    pass_threshold: float = 95.0
    marginal_threshold: float = 75.0


@dataclass(frozen=True)
class PostPromotion:
    """The watch after promotion (blue-green and canary): all traffic is on the new version while the old
    version's instances are kept; for ``duration_s`` its health is probed, its instances checked, and every
    ``interval_s`` its errors and latency (the analysis' metrics and thresholds) are judged against what the old
    version showed in the ``lookback_s`` before the watch. A failure puts all traffic back on the old version at
    once. ``no_data``: the policy when there is nothing to compare (a quiet service): "hold" (the default: the
    old version stands by and the watch goes on; if no interval had data it fails back to the old version, since
    silence is no evidence), "fail" (at the first such interval) or "pass" (health and instances decide alone).
    ``max_error_rate``: a 5xx share of the new version's requests that fails the watch outright, whatever the old
    version showed."""

    enabled: bool = False  # the catalog's default is on in prod, off elsewhere
    duration_s: int = 120
    interval_s: int = 30
    lookback_s: int = 3600
    no_data: str = "hold"
    max_error_rate: float | None = None


@dataclass(frozen=True)
class Kubernetes:
    """Where and how an environment runs on Kubernetes.

    ``url`` is how the health sensor, the analysis load and the record reach a
    Service of the release: ``{name}`` becomes the Service's name and
    ``{namespace}`` the namespace (the default is the in-cluster address;
    an ingress or ``kubectl proxy`` address works as well). ``front_url`` is
    where clients reach the release (the Gateway's listener with Gateway API
    traffic), by default the ``url`` of the service's main Service; it takes
    the same placeholders, ``{name}`` being the main Service's. The
    deployer pod itself always probes the in-cluster address.
    """

    namespace: str
    connection_id: str = "kubernetes_default"
    service_account: str = "deployflow-deployer"
    url: str = urls.IN_CLUSTER_URL
    front_url: str | None = None
    traffic: str = "gateway"  # canary: Gateway API HTTPRoute weights, or the ratio of replicas
    gateway: str = "deployflow"  # the Gateway the HTTPRoute attaches to
    gateway_namespace: str | None = None
    hostnames: tuple[str, ...] = ()
    image_pull_secrets: tuple[str, ...] = ()
    on_finish_action: str = "delete_pod"

    def service_url(self, name: str) -> str:
        return urls.service_url(self.url, name, self.namespace)


@dataclass(frozen=True)
class Approval:
    """A person approves the release (Airflow's human-in-the-loop gate) before it deploys, or before it promotes
    (the canary or the new colour is then live beside the old version, and a rejection rolls it back).

    ``approvers``: the Airflow user names who may answer (none: anyone allowed to answer the gate); never the
    user who triggered the run. ``min_approvals``: how many distinct people must approve (a rejection rejects).
    ``timeout_s``: no decision by then rejects the release."""

    required: bool = False
    approvers: tuple[str, ...] = ()
    min_approvals: int = 1
    timeout_s: int = 3600
    before: str = "deploy"


@dataclass(frozen=True)
class DockerHost:
    """The Docker engine a docker environment runs on, when it is not the local one: ``connection`` is an Airflow
    Docker connection (its host the engine's URL: ``unix://``, ``tcp://`` with TLS, ``ssh://``), ``queue`` the
    Celery queue of the worker on that host, where the environment's deploy steps run."""

    connection: str
    queue: str


@dataclass(frozen=True)
class Environment:
    name: str
    platform: str
    strategy: str
    replicas: int
    health: Health
    port: int | None = None
    blue_green: BlueGreen = field(default_factory=BlueGreen)
    canary: Canary = field(default_factory=Canary)
    rolling: Rolling = field(default_factory=Rolling)
    analysis: Analysis = field(default_factory=Analysis)
    post_promotion: PostPromotion = field(default_factory=PostPromotion)
    kubernetes: Kubernetes | None = None  # set exactly when platform is kubernetes
    config: Config = field(default_factory=Config)  # values, flags, files and secrets by reference (configuration.py)
    resources: Resources = field(default_factory=Resources)
    approval: Approval = field(default_factory=Approval)
    freeze: tuple[FreezeWindow, ...] = ()  # recurring windows in which nothing is released (freeze.py)
    requires: str | None = None  # the environment that must have promoted a version before this one takes it
    notifications: tuple[Channel, ...] = ()  # this environment's channels, besides the service's
    docker_host: DockerHost | None = None  # None: the local engine, wherever the task runs (docker platform only)


@dataclass(frozen=True)
class Nightly:
    """A scheduled release: cron expression, the environment it targets and the ref it builds."""

    cron: str
    environment: str = "dev"
    ref: str | None = None


@dataclass(frozen=True)
class Service:
    name: str
    source: Source
    build: Build
    tests: Tests
    environments: Mapping[str, Environment]
    nightly: Nightly | None = None
    owner: str = ""
    description: str = ""
    port: int = 8000
    notifications: tuple[Channel, ...] = ()  # every environment's channels

    def channels(self, environment: str) -> tuple[Channel, ...]:
        """Where the releases to ``environment`` are told: the service's channels, then the environment's."""
        return (*self.notifications, *self.environments[environment].notifications)

    @property
    def image_name(self) -> str:
        return self.name

    @property
    def platform(self) -> str:
        """The platform of every environment (the release DAG's deploy tasks are built for it)."""
        return next(iter(self.environments.values())).platform
