"""The site of a service's environment, by its platform: the one place a platform is chosen.

An unknown platform is an error that lists the valid ones, never a silent default.
"""

from __future__ import annotations

from deployflow.catalog import Service
from deployflow import health
from deployflow.errors import ConfigError
from deployflow.factory import implementation
from deployflow.platforms.base import Clients, Site, StackSettings

SITES = {
    "docker": "deployflow.platforms.docker:DockerSite",
    "kubernetes": "deployflow.platforms.kubernetes:KubernetesSite",
}


def site_for(service: Service, environment: str, *, clients: Clients, settings: StackSettings | None = None,
             session: health.Session | None = None) -> Site:
    """The site of ``environment``, reaching its platform through ``clients``."""
    if environment not in service.environments:
        raise ConfigError("environment", f"{environment!r} is not valid; valid values are {', '.join(service.environments)}")
    env = service.environments[environment]
    site = implementation("platform", env.platform, SITES)
    return site(service, env, clients=clients, settings=settings or StackSettings(), session=session)
