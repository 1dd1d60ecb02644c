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


def rollout_for(
    service: Service, environment: str, *, client: object, strategy: str | None = None,
    version: str = "", image: str = "", stack: str | None = None, state_dir: Path | None = None,
    haproxy_image: str | None = None,
) -> Rollout:
    if environment not in service.environments:
        raise ConfigError("environment", f"{environment!r} is not valid; valid values are {', '.join(service.environments)}")
    env = service.environments[environment]
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
