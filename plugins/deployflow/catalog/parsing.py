"""parse_service(): one catalog document, field by field, into the dataclasses of ``model.py``.

Each block has its parser, which reads its mapping through :class:`Fields` and
checks the rules that span fields (ports and namespaces unique, one platform per
service). The first bad value raises :class:`ConfigError` with its dotted path.
"""

from __future__ import annotations

import re

from collections.abc import Mapping
from typing import Any

from deployflow.catalog import urls
from deployflow.catalog.configuration import config, resources
from deployflow.catalog.fields import Fields
from deployflow.catalog.freeze import parse_windows
from deployflow.catalog.governance import approval, check_requires, requires
from deployflow.catalog.hosts import docker_host
from deployflow.catalog.notifications import parse_channels
from deployflow.catalog.judging import analysis, post_promotion
from deployflow.catalog.model import (
    Approval,
    BUILD_ARG,
    CONNECTION_ID,
    DEFAULT_STRATEGY,
    DNS_LABEL,
    ENVIRONMENTS,
    HOSTNAME,
    HTTP_PATH,
    ONE_LINE,
    ON_FINISH_ACTIONS,
    PLATFORMS,
    SERVICE_NAME,
    STRATEGIES,
    SUITES,
    TRAFFIC_MODES,
    BlueGreen,
    Build,
    Canary,
    Environment,
    Health,
    Kubernetes,
    Nightly,
    Rolling,
    Service,
    Tests,
)
from deployflow.catalog.ports import port_user, stack_ports_text
from deployflow.catalog.refs import check_git_ref
from deployflow.catalog.repositories import source
from deployflow.errors import ConfigError, one_of, shown


TEMPLATE_MARKERS = ("{{", "{%", "{#")  # where Jinja reads code: a catalog value is data, never a template
OWN_PLACEHOLDERS = ("{selector}", "{window}")  # an analysis query's own, replaced as plain text (``metric{{selector}}``)
COVERAGE_SOURCE = re.compile(r"[A-Za-z_.][A-Za-z0-9_./-]{0,199}")


def refuse_templates(raw: Any, path: str = "") -> None:
    """Refuse a Jinja marker in any key or string of the document, naming the first field that has one."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            at = f"{path}.{key}" if path else str(key)
            refuse_templates(key, at)
            refuse_templates(value, at)
    elif isinstance(raw, list):
        for i, value in enumerate(raw):
            refuse_templates(value, f"{path}[{i}]")
    elif isinstance(raw, str):
        text = raw
        for placeholder in OWN_PLACEHOLDERS:
            text = text.replace(placeholder, "")
        found = next((m for m in TEMPLATE_MARKERS if m in text), None)
        if found:
            raise ConfigError(path or "(top level)", f"{shown(raw)} contains {found!r}: a catalog value is data, never a "
                              "template (Airflow would render it with every Connection and Variable in reach)")


ONE_LINE_HINT = "must be one line of visible text, at most 200 characters"


def parse_service(raw: Any) -> Service:
    """Validate one catalog document; raises :class:`ConfigError` with the field's path."""
    refuse_templates(raw)
    top = Fields(raw, "", ("name", "description", "owner", "port", "source", "build", "tests", "environments", "nightly",
                           "notifications"))
    name = top.string("name", pattern=SERVICE_NAME, hint="use lower-case letters, digits and '-', at most 40 characters")
    environments = _environments(top.required("environments"), top.at("environments"))
    nightly = _nightly(top.get("nightly"), top.at("nightly"))
    if nightly is not None and nightly.environment not in environments:
        raise ConfigError(top.at("nightly.environment"), one_of(nightly.environment, tuple(environments)))
    return Service(
        name=name,
        description=top.string("description", "", pattern=ONE_LINE, hint=ONE_LINE_HINT),
        owner=top.string("owner", "", pattern=ONE_LINE, hint=ONE_LINE_HINT),
        port=top.integer("port", 8000, low=1024, high=65535),
        source=source(top.required("source"), top.at("source")),
        build=_build(top.get("build", {}), top.at("build")),
        tests=_tests(top.get("tests", {}), top.at("tests")),
        environments=environments,
        nightly=nightly,
        notifications=parse_channels(top.get("notifications"), top.at("notifications")),
    )


def _build(raw: Any, path: str) -> Build:
    f = Fields(raw, path, ("dockerfile", "args", "timeout_s"))
    args = f.get("args", {}) or {}
    if not isinstance(args, Mapping) or not all(isinstance(k, str) and isinstance(v, (str, int, float)) for k, v in args.items()):
        raise ConfigError(f.at("args"), "must be a mapping of build-arg names to strings")
    for name, value in args.items():
        if not BUILD_ARG.fullmatch(name):
            raise ConfigError(f"{f.at('args')}.{name}", "is not a valid build-arg name; use letters, digits and '_'")
        if isinstance(value, str) and not ONE_LINE.fullmatch(value):
            raise ConfigError(f"{f.at('args')}.{name}", f"{shown(value)} is not valid; {ONE_LINE_HINT}")
    return Build(
        dockerfile=f.relative_path("dockerfile", "Dockerfile", inside="the build context"),
        args={k: str(v) for k, v in args.items()},
        timeout_s=f.integer("timeout_s", 900, low=10, high=7200),
    )


def _tests(raw: Any, path: str) -> Tests:
    f = Fields(raw, path, ("suites", "coverage_threshold", "coverage_source", "timeout_s"))
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
        coverage_source=f.string("coverage_source", ".", pattern=COVERAGE_SOURCE,
                                 hint="a package or directory to measure: letters, digits, '_', '.', '/' and '-'"),
        timeout_s=f.integer("timeout_s", 600, low=10, high=7200),
    )


def _environments(raw: Any, path: str) -> dict[str, Environment]:
    f = Fields(raw, path, ENVIRONMENTS)
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
        if env.port is not None and (user := port_user(env.port)) is not None:
            raise ConfigError(f"{path}.{env.name}.port", f"{env.port} is {user}; a front port must be none of the "
                                                          f"local stack's ({stack_ports_text()})")
        if env.port is not None and env.port in seen:
            raise ConfigError(f"{path}.{env.name}.port", f"{env.port} is already the port of {seen[env.port]}")
        if env.port is not None:
            seen[env.port] = env.name
    check_requires(environments, path)
    return environments


def _environment(name: str, raw: Any, path: str) -> Environment:
    f = Fields(raw, path, ("platform", "strategy", "replicas", "port", "health", "blue_green", "canary", "rolling", "analysis",
                           "post_promotion", "kubernetes", "config", "resources", "approval", "freeze", "requires",
                           "notifications", "docker_host"))
    platform = f.choice("platform", PLATFORMS, "docker")
    if platform == "docker" and f.get("port") is None:
        raise ConfigError(f.at("port"), "is required on the docker platform (the proxy's front port on 127.0.0.1)")
    if platform != "kubernetes" and f.get("kubernetes") is not None:
        raise ConfigError(f.at("kubernetes"), f"is only for platform 'kubernetes' (this environment's is {platform!r})")
    if platform != "docker" and f.get("docker_host") is not None:
        raise ConfigError(f.at("docker_host"), f"is only for platform 'docker' (this environment's is {platform!r}; "
                                               "a kubernetes environment names its cluster in kubernetes.connection_id)")
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
        analysis=analysis(f.get("analysis", {}) or {}, f.at("analysis")),
        post_promotion=post_promotion(f.get("post_promotion", {}) or {}, f.at("post_promotion"), default=name == "prod"),
        kubernetes=_kubernetes(name, f.get("kubernetes", {}) or {}, f.at("kubernetes")) if platform == "kubernetes" else None,
        config=config(f.get("config", {}) or {}, f.at("config"), platform=platform),
        resources=resources(f.get("resources", {}) or {}, f.at("resources")),
        approval=approval(f.get("approval"), f.at("approval")) if f.get("approval") is not None else Approval(),
        freeze=parse_windows(f.get("freeze"), f.at("freeze")),
        requires=requires(f.get("requires"), f.at("requires")),
        notifications=parse_channels(f.get("notifications"), f.at("notifications")),
        docker_host=docker_host(f.get("docker_host"), f.at("docker_host")),
    )


def _kubernetes(environment: str, raw: Any, path: str) -> Kubernetes:
    for moved in ("cpu", "memory"):
        if isinstance(raw, Mapping) and moved in raw:
            raise ConfigError(f"{path}.{moved}", f"has moved to {path.rsplit('.', 1)[0]}.resources.{moved} (limits on every platform)")
    f = Fields(raw, path, ("namespace", "connection_id", "service_account", "url", "front_url", "traffic", "gateway", "gateway_namespace",
                           "hostnames", "image_pull_secrets", "on_finish_action"))
    dns = "use lower-case letters, digits and '-', at most 63 characters"
    url = urls.check_url_template(f.get("url", Kubernetes.url), f.at("url"), require_name=True)
    front = f.get("front_url")
    if front is not None:
        urls.check_url_template(front, f.at("front_url"))
    gateway_namespace = f.get("gateway_namespace")
    if gateway_namespace is not None:
        f.string("gateway_namespace", pattern=DNS_LABEL, hint=dns)
    return Kubernetes(
        namespace=f.string("namespace", environment, pattern=DNS_LABEL, hint=dns),
        connection_id=f.string("connection_id", Kubernetes.connection_id, pattern=CONNECTION_ID,
                               hint="must be an Airflow connection id"),
        service_account=f.string("service_account", Kubernetes.service_account, pattern=DNS_LABEL, hint=dns),
        url=url,
        front_url=front,
        traffic=f.choice("traffic", TRAFFIC_MODES, "gateway"),
        gateway=f.string("gateway", Kubernetes.gateway, pattern=DNS_LABEL, hint=dns),
        gateway_namespace=gateway_namespace,
        hostnames=f.strings("hostnames", pattern=HOSTNAME, hint="must be a DNS host name such as app.example.com"),
        image_pull_secrets=f.strings("image_pull_secrets", pattern=DNS_LABEL, hint=dns),
        on_finish_action=f.choice("on_finish_action", ON_FINISH_ACTIONS, "delete_pod"),
    )


def _health(raw: Any, path: str) -> Health:
    f = Fields(raw, path, ("health", "ready", "live", "consecutive", "interval_s", "timeout_s"))
    hint = "must be an HTTP path starting with '/'"
    return Health(
        health=f.string("health", "/health", pattern=HTTP_PATH, hint=hint),
        ready=f.string("ready", "/ready", pattern=HTTP_PATH, hint=hint),
        live=f.string("live", "/live", pattern=HTTP_PATH, hint=hint),
        consecutive=f.integer("consecutive", 3, low=1, high=100),
        interval_s=f.number("interval_s", 1.0, low=0.1, high=60),
        timeout_s=f.integer("timeout_s", 60, low=1, high=3600),
    )


def _blue_green(raw: Any, path: str) -> BlueGreen:
    f = Fields(raw, path, ("scale_down_delay_s",))
    return BlueGreen(scale_down_delay_s=f.integer("scale_down_delay_s", 30, low=0, high=3600))


def _canary(raw: Any, path: str) -> Canary:
    f = Fields(raw, path, ("steps", "pause_s", "replicas"))
    steps = f.get("steps", [10, 25, 50, 100])
    valid = (
        isinstance(steps, list) and steps and steps[-1] == 100
        and all(isinstance(w, int) and not isinstance(w, bool) and 0 < w <= 100 for w in steps)
        and all(a < b for a, b in zip(steps, steps[1:]))
    )
    if not valid:
        raise ConfigError(f.at("steps"), f"{shown(steps)} is not valid; must be rising percentages from 1 to 100, ending at 100")
    return Canary(
        steps=tuple(steps),
        pause_s=f.integer("pause_s", 30, low=0, high=86400),
        replicas=f.integer("replicas", 1, low=1, high=50),
    )


def _rolling(raw: Any, path: str) -> Rolling:
    f = Fields(raw, path, ("batch_size", "max_unavailable"))
    return Rolling(
        batch_size=f.integer("batch_size", 1, low=1, high=50),
        max_unavailable=f.integer("max_unavailable", 0, low=0, high=50),
    )


def _nightly(raw: Any, path: str) -> Nightly | None:
    if raw is None:
        return None
    f = Fields(raw, path, ("cron", "environment", "ref"))
    cron = f.string("cron")
    from croniter import croniter  # a pure library; Airflow depends on it too

    if not croniter.is_valid(cron):
        raise ConfigError(f.at("cron"), f"{shown(cron)} is not a valid cron expression (five fields, e.g. '0 2 * * *')")
    ref = f.get("ref")
    if ref is not None:
        check_git_ref(ref, f.at("ref"))
    return Nightly(cron=cron, environment=f.choice("environment", ENVIRONMENTS, "dev"), ref=ref)
