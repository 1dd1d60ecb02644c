"""Build the Rollout for one service and environment: the one place that maps an environment's platform to
its workload, traffic router and release store (each from its factory)."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from deployflow.catalog import Environment, Service
from deployflow.errors import ConfigError
from deployflow.platforms.factory import platform_class
from deployflow.rollout.engine import Rollout
from deployflow.record import Target
from deployflow.rollout.watch import Judge
from deployflow.routers.factory import router_class
from deployflow.platforms.config_files import ConfigFiles
from deployflow.stores.factory import store_class
from deployflow.strategies.base import Strategy
from deployflow.strategies.factory import strategy_for


def platform_client(platform: str) -> object:
    """The client a platform's driver talks through: the Docker engine's, or a Kubernetes ApiClient
    (the pod's service account in a cluster, else $KUBECONFIG)."""
    if platform == "kubernetes":
        import kubernetes

        try:
            kubernetes.config.load_incluster_config()
        except kubernetes.config.ConfigException:
            try:
                kubernetes.config.load_kube_config()
            except (kubernetes.config.ConfigException, OSError) as exc:
                raise ConfigError("kubernetes", f"no credentials: not in a pod with a service account, and no usable "
                                  f"kubeconfig ($KUBECONFIG or ~/.kube/config): {exc}") from None
        return kubernetes.client.ApiClient()
    import docker

    return docker.from_env()


def traffic_name(env: Environment, strategy: Strategy) -> str:
    """The router an environment's strategy uses: HAProxy on a Docker host; on Kubernetes, a plan that splits
    traffic between versions by the environment's ``kubernetes.traffic``, one that moves it at once a selector switch."""
    if env.kubernetes is None:
        return "haproxy"
    splits = any(0 < step.percent < 100 for step in strategy.steps(env.replicas))
    return env.kubernetes.traffic if splits else "selector"


def rollout_for(
    service: Service, environment: str, *, client: object, strategy: str | None = None,
    version: str = "", image: str = "", stack: str | None = None, state_dir: Path | None = None,
    haproxy_image: str | None = None,
) -> Rollout:
    if environment not in service.environments:
        raise ConfigError("environment", f"{environment!r} is not valid; valid values are {', '.join(service.environments)}")
    env = service.environments[environment]
    plan = strategy_for(strategy or env.strategy, env)
    session = requests.Session()
    if env.kubernetes is not None:
        from deployflow.kubernetes.cluster import Cluster
        from deployflow.kubernetes.manifests import Manifests

        manifests = Manifests(service, env)
        cluster = Cluster.from_api_client(client, manifests.namespace)
        workload = platform_class("kubernetes")(cluster, manifests, in_place=plan.in_place)
        traffic = router_class(traffic_name(env, plan))(cluster, manifests)
        store = store_class("configmap")(cluster, manifests)
    else:
        from deployflow.platforms.docker import DockerPlatform
        from deployflow.routers.haproxy import HAProxyRouter

        stack = stack or os.environ.get("DEPLOYFLOW_STACK", "local")
        state_dir = Path(state_dir or os.environ.get("DEPLOYFLOW_STATE", ".state"))
        proxy = HAProxyRouter(
            client, stack=stack, service=service.name, environment=env.name, front_port=env.port,
            check_path=env.health.ready, state_dir=state_dir,
            image=haproxy_image or os.environ.get("DEPLOYFLOW_HAPROXY_IMAGE", "deployflow/haproxy:1"),
        )
        workload = platform_class("docker")(
            DockerPlatform(client, stack=stack), service=service.name, environment=env.name, health_config=env.health,
            session=session, targets_path=state_dir / "targets" / f"{stack}-{service.name}-{env.name}.json",
            configs=ConfigFiles.of(state_dir, stack=stack, service=service.name, environment=env.name), resources=env.resources,
        )
        traffic = router_class(traffic_name(env, plan))(proxy, workload)
        store = store_class("file")(proxy.dir / "release.json")
    return Rollout(workload=workload, traffic=traffic, store=store, strategy=plan, service=service.name, environment=env,
                   target=Target(version, image), session=session,
                   judges=lambda old, new: version_comparison(service.name, env, old, new, session))


def version_comparison(service: str, env: Environment, old: str, new: str, session: requests.Session) -> Judge:
    """The post-promotion watch's judge: Prometheus at $DEPLOYFLOW_PROMETHEUS_URL (the deploy task passes Airflow's),
    read for the new version against the old. Imported when a watch runs: the judge needs numpy and scipy."""
    from deployflow.analysis.comparison import VersionComparison
    from deployflow.metrics.prometheus import DEFAULT_URL, PrometheusProvider

    url = os.environ.get("DEPLOYFLOW_PROMETHEUS_URL") or DEFAULT_URL
    return VersionComparison(PrometheusProvider(url, session), service=service, environment=env.name, config=env.analysis,
                             watch=env.post_promotion, old=old, new=new)
