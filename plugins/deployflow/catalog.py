"""The service catalog: one YAML file per service, loaded into validated dataclasses.

A bad file raises :class:`ConfigError` naming the file, the dotted path of the
field, and the valid values, so a typo fails DAG import with a sentence a person
can act on instead of a KeyError deep inside a task.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployflow.errors import ConfigError, one_of

ENVIRONMENTS = ("dev", "staging", "prod")
STRATEGIES = ("rolling", "canary", "blue-green")
PLATFORMS = ("docker", "kubernetes")
SUITES = ("unit", "integration", "performance")
DEFAULT_STRATEGY = {"dev": "rolling", "staging": "canary", "prod": "blue-green"}

_SERVICE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$")
_HTTP_PATH = re.compile(r"^/[A-Za-z0-9._~/-]*$")
GIT_REF = re.compile(r"^(?!-)[A-Za-z0-9._/@^~-]{1,200}$")


def project_root() -> Path:
    """The deployflow checkout: ``$DEPLOYFLOW_HOME``, else two levels above this package."""
    return Path(os.environ.get("DEPLOYFLOW_HOME") or Path(__file__).resolve().parents[2])


def catalog_dir() -> Path:
    """Where service files live: ``$DEPLOYFLOW_CATALOG``, else ``include/services``."""
    configured = os.environ.get("DEPLOYFLOW_CATALOG")
    return Path(configured) if configured else project_root() / "include" / "services"


class _Fields:
    """Reads one mapping of a YAML document, tracking the dotted path for errors."""

    def __init__(self, raw: Any, path: str, allowed: tuple[str, ...]) -> None:
        if not isinstance(raw, Mapping):
            raise ConfigError(path or "(top level)", f"must be a mapping, got {type(raw).__name__}")
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise ConfigError(_join(path, str(unknown[0])), f"unknown field; valid fields are {', '.join(allowed)}")
        self.raw = raw
        self.path = path

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def required(self, key: str) -> Any:
        if self.raw.get(key) in (None, ""):
            raise ConfigError(self.at(key), "is required")
        return self.raw[key]

    def string(self, key: str, default: str | None = None, *, pattern: re.Pattern[str] | None = None, hint: str = "") -> str:
        value = self.raw.get(key, default)
        if value is None:
            raise ConfigError(self.at(key), "is required")
        if not isinstance(value, str):
            raise ConfigError(self.at(key), f"must be a string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise ConfigError(self.at(key), f"{value!r} is not valid; {hint}")
        return value

    def choice(self, key: str, valid: tuple[str, ...], default: str | None = None) -> str:
        value = self.raw.get(key, default)
        if value not in valid:
            raise ConfigError(self.at(key), one_of(value, valid))
        return value

    def integer(self, key: str, default: int, *, low: int, high: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not low <= value <= high:
            raise ConfigError(self.at(key), f"{value!r} is not valid; must be a whole number from {low} to {high}")
        return int(value)

    def number(self, key: str, default: float, *, low: float, high: float) -> float:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise ConfigError(self.at(key), f"{value!r} is not valid; must be a number from {low:g} to {high:g}")
        return float(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


@dataclass(frozen=True)
class Source:
    """Where the service's code is: a git URL or a local repository, and the build context in it."""

    repo: str
    context: str = "."
    default_ref: str = "HEAD"

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


NO_DATA_POLICIES = ("fail", "pass", "extend")
METRIC_KINDS = ("errors", "histogram", "series")
DIRECTIONS = ("increase", "decrease", "either")


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


TRAFFIC_MODES = ("gateway", "replicas")
ON_FINISH_ACTIONS = ("delete_pod", "delete_succeeded_pod", "keep_pod")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|M|G|T)?$")
_HOSTNAME = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Kubernetes:
    """Where and how an environment runs on Kubernetes.

    ``url`` is how the health sensor, the analysis load and the record reach a
    Service of the release: ``{name}`` becomes the Service's name and
    ``{namespace}`` the namespace (the default is the in-cluster address;
    an ingress or ``kubectl proxy`` address works as well). ``front_url`` is
    where clients reach the release (the Gateway's listener with Gateway API
    traffic), by default the ``url`` of the service's main Service. The
    deployer pod itself always probes the in-cluster address.
    """

    namespace: str
    connection_id: str = "kubernetes_default"
    service_account: str = "deployflow-deployer"
    url: str = "http://{name}.{namespace}.svc.cluster.local"
    front_url: str | None = None
    traffic: str = "gateway"  # canary: Gateway API HTTPRoute weights, or the ratio of replicas
    gateway: str = "deployflow"  # the Gateway the HTTPRoute attaches to
    gateway_namespace: str | None = None
    hostnames: tuple[str, ...] = ()
    cpu: str = "500m"
    memory: str = "1Gi"
    image_pull_secrets: tuple[str, ...] = ()
    on_finish_action: str = "delete_pod"

    def service_url(self, name: str) -> str:
        return self.url.format(name=name, namespace=self.namespace).rstrip("/")


def front_url(service: Service, env: Environment) -> str:
    """Where clients reach the environment's live version: its proxy on a Docker host, its front URL on Kubernetes."""
    if env.kubernetes is None:
        return f"http://127.0.0.1:{env.port}"
    return (env.kubernetes.front_url or env.kubernetes.service_url(service.name)).rstrip("/")


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
    kubernetes: Kubernetes | None = None  # set exactly when platform is kubernetes


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

    @property
    def image_name(self) -> str:
        return self.name

    @property
    def platform(self) -> str:
        """The platform of every environment (the release DAG's deploy tasks are built for it)."""
        return next(iter(self.environments.values())).platform


def parse_service(raw: Any) -> Service:
    """Validate one catalog document; raises :class:`ConfigError` with the field's path."""
    top = _Fields(raw, "", ("name", "description", "owner", "port", "source", "build", "tests", "environments", "nightly"))
    name = top.string("name", pattern=_SERVICE_NAME, hint="use lower-case letters, digits and '-', at most 40 characters")
    return Service(
        name=name,
        description=top.string("description", ""),
        owner=top.string("owner", ""),
        port=top.integer("port", 8000, low=1024, high=65535),
        source=_source(top.required("source"), top.at("source")),
        build=_build(top.get("build", {}), top.at("build")),
        tests=_tests(top.get("tests", {}), top.at("tests")),
        environments=_environments(top.required("environments"), top.at("environments")),
        nightly=_nightly(top.get("nightly"), top.at("nightly")),
    )


def _source(raw: Any, path: str) -> Source:
    f = _Fields(raw, path, ("repo", "context", "default_ref"))
    context = f.string("context", ".")
    if os.path.isabs(context) or ".." in Path(context).parts:
        raise ConfigError(f.at("context"), f"{context!r} is not valid; must be a relative path inside the repository")
    return Source(
        repo=f.string("repo"),
        context=context,
        default_ref=f.string("default_ref", "HEAD", pattern=GIT_REF, hint="must be a branch, tag or commit name"),
    )


def _build(raw: Any, path: str) -> Build:
    f = _Fields(raw, path, ("dockerfile", "args", "timeout_s"))
    args = f.get("args", {}) or {}
    if not isinstance(args, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in args.items()):
        raise ConfigError(f.at("args"), "must be a mapping of build-arg names to strings")
    return Build(
        dockerfile=f.string("dockerfile", "Dockerfile"),
        args={k: str(v) for k, v in args.items()},
        timeout_s=f.integer("timeout_s", 900, low=10, high=7200),
    )


def _tests(raw: Any, path: str) -> Tests:
    f = _Fields(raw, path, ("suites", "coverage_threshold", "coverage_source", "timeout_s"))
    suites = f.get("suites", list(SUITES))
    if not isinstance(suites, list) or not suites:
        raise ConfigError(f.at("suites"), f"must be a non-empty list drawn from {', '.join(SUITES)}")
    for i, suite in enumerate(suites):
        if suite not in SUITES:
            raise ConfigError(f"{f.at('suites')}[{i}]", one_of(suite, SUITES))
    if len(set(suites)) != len(suites):
        raise ConfigError(f.at("suites"), f"lists a suite twice: {suites}")
    return Tests(
        suites=tuple(suites),
        coverage_threshold=f.integer("coverage_threshold", 80, low=0, high=100),
        coverage_source=f.string("coverage_source", "."),
        timeout_s=f.integer("timeout_s", 600, low=10, high=7200),
    )


def _environments(raw: Any, path: str) -> dict[str, Environment]:
    f = _Fields(raw, path, ENVIRONMENTS)
    environments = {name: _environment(name, f.raw[name] or {}, f.at(name)) for name in ENVIRONMENTS if name in f.raw}
    if not environments:
        raise ConfigError(path, f"must define at least one of {', '.join(ENVIRONMENTS)}")
    first = next(iter(environments.values()))
    for env in environments.values():
        if env.platform != first.platform:
            raise ConfigError(
                f"{path}.{env.name}.platform",
                f"{env.platform!r} differs from {first.name}'s {first.platform!r}; a service's environments share one "
                "platform (its release DAG's deploy tasks run there): make a second catalog entry for the other",
            )
    namespaces: dict[str, str] = {}
    for env in environments.values():
        if env.kubernetes is None:
            continue
        if env.kubernetes.namespace in namespaces:
            raise ConfigError(f"{path}.{env.name}.kubernetes.namespace",
                              f"{env.kubernetes.namespace!r} is already {namespaces[env.kubernetes.namespace]}'s namespace "
                              "(the service's objects are named alike in every environment)")
        namespaces[env.kubernetes.namespace] = env.name
    seen: dict[int, str] = {}
    for env in environments.values():
        if env.port is not None and env.port in seen:
            raise ConfigError(f"{path}.{env.name}.port", f"{env.port} is already the port of {seen[env.port]}")
        if env.port is not None:
            seen[env.port] = env.name
    return environments


def _environment(name: str, raw: Any, path: str) -> Environment:
    f = _Fields(raw, path, ("platform", "strategy", "replicas", "port", "health", "blue_green", "canary", "rolling", "analysis",
                            "kubernetes"))
    platform = f.choice("platform", PLATFORMS, "docker")
    if platform == "docker" and f.get("port") is None:
        raise ConfigError(f.at("port"), "is required on the docker platform (the proxy's front port on 127.0.0.1)")
    if platform != "kubernetes" and f.get("kubernetes") is not None:
        raise ConfigError(f.at("kubernetes"), f"is only for platform 'kubernetes' (this environment's is {platform!r})")
    return Environment(
        name=name,
        platform=platform,
        strategy=f.choice("strategy", STRATEGIES, DEFAULT_STRATEGY[name]),
        replicas=f.integer("replicas", 1, low=1, high=50),
        port=None if f.get("port") is None else f.integer("port", 0, low=1024, high=65535),
        health=_health(f.get("health", {}) or {}, f.at("health")),
        blue_green=_blue_green(f.get("blue_green", {}) or {}, f.at("blue_green")),
        canary=_canary(f.get("canary", {}) or {}, f.at("canary")),
        rolling=_rolling(f.get("rolling", {}) or {}, f.at("rolling")),
        analysis=_analysis(f.get("analysis", {}) or {}, f.at("analysis")),
        kubernetes=_kubernetes(name, f.get("kubernetes", {}) or {}, f.at("kubernetes")) if platform == "kubernetes" else None,
    )


def _kubernetes(environment: str, raw: Any, path: str) -> Kubernetes:
    f = _Fields(raw, path, ("namespace", "connection_id", "service_account", "url", "front_url", "traffic", "gateway", "gateway_namespace",
                            "hostnames", "cpu", "memory", "image_pull_secrets", "on_finish_action"))
    dns = "use lower-case letters, digits and '-', at most 63 characters"
    url = f.string("url", Kubernetes.url)
    if not url.startswith(("http://", "https://")) or "{name}" not in url:
        raise ConfigError(f.at("url"), f"{url!r} is not valid; must be an http(s) URL containing {{name}} (the Service's name)")
    try:
        url.format(name="x", namespace="x")
    except (KeyError, IndexError, ValueError):
        raise ConfigError(f.at("url"), f"{url!r} is not valid; the only placeholders are {{name}} and {{namespace}}") from None

    def names(key: str, pattern: re.Pattern[str], hint: str) -> tuple[str, ...]:
        values = f.get(key, []) or []
        if not isinstance(values, list):
            raise ConfigError(f.at(key), "must be a list")
        for i, value in enumerate(values):
            if not isinstance(value, str) or not pattern.match(value):
                raise ConfigError(f"{f.at(key)}[{i}]", f"{value!r} is not valid; {hint}")
        return tuple(values)

    front = f.get("front_url")
    if front is not None and not (isinstance(front, str) and front.startswith(("http://", "https://"))):
        raise ConfigError(f.at("front_url"), f"{front!r} is not valid; must be an http(s) URL")
    gateway_namespace = f.get("gateway_namespace")
    if gateway_namespace is not None:
        f.string("gateway_namespace", pattern=_DNS_LABEL, hint=dns)
    return Kubernetes(
        namespace=f.string("namespace", environment, pattern=_DNS_LABEL, hint=dns),
        connection_id=f.string("connection_id", Kubernetes.connection_id, pattern=re.compile(r"^[A-Za-z0-9_.-]{1,250}$"),
                               hint="must be an Airflow connection id"),
        service_account=f.string("service_account", Kubernetes.service_account, pattern=_DNS_LABEL, hint=dns),
        url=url,
        front_url=front,
        traffic=f.choice("traffic", TRAFFIC_MODES, "gateway"),
        gateway=f.string("gateway", Kubernetes.gateway, pattern=_DNS_LABEL, hint=dns),
        gateway_namespace=gateway_namespace,
        hostnames=names("hostnames", _HOSTNAME, "must be a DNS host name such as app.example.com"),
        cpu=f.string("cpu", Kubernetes.cpu, pattern=_QUANTITY, hint="must be a Kubernetes quantity such as 500m or 1"),
        memory=f.string("memory", Kubernetes.memory, pattern=_QUANTITY, hint="must be a Kubernetes quantity such as 1Gi"),
        image_pull_secrets=names("image_pull_secrets", _DNS_LABEL, dns),
        on_finish_action=f.choice("on_finish_action", ON_FINISH_ACTIONS, "delete_pod"),
    )


def _health(raw: Any, path: str) -> Health:
    f = _Fields(raw, path, ("health", "ready", "live", "consecutive", "interval_s", "timeout_s"))
    hint = "must be an HTTP path starting with '/'"
    return Health(
        health=f.string("health", "/health", pattern=_HTTP_PATH, hint=hint),
        ready=f.string("ready", "/ready", pattern=_HTTP_PATH, hint=hint),
        live=f.string("live", "/live", pattern=_HTTP_PATH, hint=hint),
        consecutive=f.integer("consecutive", 3, low=1, high=100),
        interval_s=f.number("interval_s", 1.0, low=0.1, high=60),
        timeout_s=f.integer("timeout_s", 60, low=1, high=3600),
    )


def _blue_green(raw: Any, path: str) -> BlueGreen:
    f = _Fields(raw, path, ("scale_down_delay_s",))
    return BlueGreen(scale_down_delay_s=f.integer("scale_down_delay_s", 30, low=0, high=3600))


def _canary(raw: Any, path: str) -> Canary:
    f = _Fields(raw, path, ("steps", "pause_s", "replicas"))
    steps = f.get("steps", [10, 25, 50, 100])
    valid = (
        isinstance(steps, list) and steps and steps[-1] == 100
        and all(isinstance(w, int) and not isinstance(w, bool) and 0 < w <= 100 for w in steps)
        and all(a < b for a, b in zip(steps, steps[1:]))
    )
    if not valid:
        raise ConfigError(f.at("steps"), f"{steps!r} is not valid; must be rising percentages from 1 to 100, ending at 100")
    return Canary(
        steps=tuple(steps),
        pause_s=f.integer("pause_s", 30, low=0, high=86400),
        replicas=f.integer("replicas", 1, low=1, high=50),
    )


def _analysis(raw: Any, path: str) -> Analysis:
    f = _Fields(raw, path, ("enabled", "interval_s", "intervals", "baseline", "load_rate", "no_data", "metrics",
                            "pass_threshold", "marginal_threshold"))
    for flag in ("enabled", "baseline"):
        if not isinstance(f.get(flag, True), bool):
            raise ConfigError(f.at(flag), f"{f.get(flag)!r} is not valid; must be true or false")
    extra = f.get("metrics", []) or []
    if not isinstance(extra, list):
        raise ConfigError(f.at("metrics"), "must be a list of {name, kind, query, direction, critical, group}")
    metrics = [_metric(m, f"{f.at('metrics')}[{i}]") for i, m in enumerate(extra)]
    names = [m.name for m in (*DEFAULT_METRICS, *metrics)]
    if len(set(names)) != len(names):
        raise ConfigError(f.at("metrics"), f"metric names must be unique (built in: error_rate, latency): {names}")
    pass_threshold = f.number("pass_threshold", 95.0, low=0, high=100)
    return Analysis(
        enabled=f.get("enabled", True),
        interval_s=f.integer("interval_s", 30, low=1, high=3600),
        intervals=f.integer("intervals", 3, low=1, high=100),
        baseline=f.get("baseline", True),
        load_rate=f.number("load_rate", 0.0, low=0, high=1000),
        no_data=f.choice("no_data", NO_DATA_POLICIES, "fail"),
        metrics=(*DEFAULT_METRICS, *metrics),
        pass_threshold=pass_threshold,
        marginal_threshold=f.number("marginal_threshold", 75.0, low=0, high=pass_threshold),
    )


def _metric(raw: Any, path: str) -> MetricQuery:
    f = _Fields(raw, path, ("name", "kind", "query", "direction", "critical", "group"))
    query = f.string("query")
    if "{selector}" not in query:
        raise ConfigError(f.at("query"), "must contain {selector}, where the track's label matchers go")
    return MetricQuery(
        name=f.string("name", pattern=re.compile(r"^[a-z][a-z0-9_]{0,40}$"), hint="use lower-case letters, digits and '_'"),
        kind=f.choice("kind", METRIC_KINDS, "series"),
        query=query,
        direction=f.choice("direction", DIRECTIONS, "increase"),
        critical=bool(f.get("critical", False)),
        group=f.string("group", "custom"),
    )


def _rolling(raw: Any, path: str) -> Rolling:
    f = _Fields(raw, path, ("batch_size", "max_unavailable"))
    return Rolling(
        batch_size=f.integer("batch_size", 1, low=1, high=50),
        max_unavailable=f.integer("max_unavailable", 0, low=0, high=50),
    )


def _nightly(raw: Any, path: str) -> Nightly | None:
    if raw is None:
        return None
    f = _Fields(raw, path, ("cron", "environment", "ref"))
    cron = f.string("cron")
    from croniter import croniter  # a pure library; Airflow depends on it too

    if not croniter.is_valid(cron):
        raise ConfigError(f.at("cron"), f"{cron!r} is not a valid cron expression (five fields, e.g. '0 2 * * *')")
    ref = f.get("ref")
    if ref is not None:
        f.string("ref", pattern=GIT_REF, hint="must be a branch, tag or commit name")
    return Nightly(cron=cron, environment=f.choice("environment", ENVIRONMENTS, "dev"), ref=ref)


def load_service(path: Path) -> Service:
    """Load and validate one catalog file; every error names the file."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError("(file)", f"is not valid YAML: {exc}", source=str(path)) from exc
    try:
        service = parse_service(raw)
    except ConfigError as exc:
        raise exc.in_source(str(path)) from None
    if service.name != path.stem:
        raise ConfigError("name", f"{service.name!r} must match the file name {path.stem!r}", source=str(path))
    return service


def load_catalog(directory: Path | None = None) -> dict[str, Service]:
    """Every ``*.yaml`` service in ``directory``, by name. Raises on the first bad file."""
    directory = directory or catalog_dir()
    if not directory.is_dir():
        raise ConfigError("(catalog)", f"directory {directory} does not exist (set DEPLOYFLOW_CATALOG)")
    services = [load_service(p) for p in sorted(directory.glob("*.yaml"))]
    owners: dict[int, str] = {}
    for service in services:
        for env in service.environments.values():
            if env.port is None:
                continue
            if env.port in owners:
                raise ConfigError(
                    f"environments.{env.name}.port", f"{env.port} is already the port of {owners[env.port]}",
                    source=str(directory / f"{service.name}.yaml"),
                )
            owners[env.port] = f"{service.name}/{env.name}"
    return {s.name: s for s in services}
