"""Build a Rollout for one service and environment: the one place that maps
an environment's platform to its platform driver and router."""

from __future__ import annotations

import os
from pathlib import Path

import requests

from deployflow.catalog import Service
from deployflow.deployer.rollout import Rollout, Target
from deployflow.errors import ConfigError
from deployflow.platforms.factory import platform_class
from deployflow.routers.factory import router_class
from deployflow.strategies.factory import strategy_for

ROUTER_OF_PLATFORM = {"docker": "haproxy"}


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


def rollout_for(
    service: Service, environment: str, *, client: object, strategy: str | None = None,
    version: str = "", image: str = "", stack: str | None = None, state_dir: Path | None = None,
    haproxy_image: str | None = None,
) -> Rollout:
    if environment not in service.environments:
        raise ConfigError("environment", f"{environment!r} is not valid; valid values are {', '.join(service.environments)}")
    env = service.environments[environment]
    if env.platform == "kubernetes":
        from deployflow.kubernetes.rollout import kubernetes_rollout

        return kubernetes_rollout(service, env, client, strategy=strategy_for(strategy or env.strategy, env),
                                  target=Target(version, image))
    stack = stack or os.environ.get("DEPLOYFLOW_STACK", "local")
    state_dir = Path(state_dir or os.environ.get("DEPLOYFLOW_STATE", ".state"))
    router = router_class(ROUTER_OF_PLATFORM[env.platform])(
        client, stack=stack, service=service.name, environment=env.name, front_port=env.port,
        check_path=env.health.ready, state_dir=state_dir,
        image=haproxy_image or os.environ.get("DEPLOYFLOW_HAPROXY_IMAGE", "deployflow/haproxy:1"),
    )
    return Rollout(
        platform=platform_class(env.platform)(client, stack=stack), router=router,
        strategy=strategy_for(strategy or env.strategy, env), service=service, environment=env,
        target=Target(version, image), session=requests.Session(), state_dir=router.dir,
        targets_path=state_dir / "targets" / f"{stack}-{service.name}-{env.name}.json",
    )
