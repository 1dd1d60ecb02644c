"""Build the Rollout for one service and environment from its site: the deployer's clients, the stack's
settings, the strategy as the platform carries it out, and the post-promotion watch's judge."""

from __future__ import annotations

import requests

from deployflow.catalog import Environment, Service
from deployflow.errors import ConfigError
from deployflow.platforms.base import Clients, Site, StackSettings
from deployflow.platforms.factory import site_for
from deployflow.record import Target
from deployflow.rollout.engine import Rollout
from deployflow.rollout.fence import fenced_parts
from deployflow.rollout.watch import Judge
from deployflow.settings import DEFAULT_PROMETHEUS_URL


def deployer_clients() -> Clients:
    """The clients a deployer container or pod has: the Docker engine's socket it has mounted, or a Kubernetes
    ApiClient (the pod's service account in a cluster, else $KUBECONFIG); each made only if a site asks."""
    return Clients(docker=_docker_from_env, kubernetes=_kubernetes_from_pod)


def _docker_from_env() -> object:
    import docker

    return docker.from_env()


def _kubernetes_from_pod(connection_id: str) -> object:
    """The pod's own credentials: Airflow's connection (``connection_id``) is for the tasks, not the deployer."""
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


def rollout_of(site: Site, service: Service, env: Environment, *, strategy: str | None = None, version: str = "",
               image: str = "", session: requests.Session | None = None, fence: int | None = None,
               prometheus_url: str | None = None) -> Rollout:
    """The rollout engine over ``site``'s parts; with a ``fence`` (the step's token), each of their writes checked
    against the newest token in the release store first (``rollout/fence.py``); promote's watch reads
    ``prometheus_url`` (None: the local stack's Prometheus)."""
    session = session or requests.Session()
    plan = site.strategy(strategy)
    workload, traffic, store = fenced_parts(site, plan, fence)
    return Rollout(workload=workload, traffic=traffic, store=store, strategy=plan,
                   service=service.name, environment=env, target=Target(version, image), session=session,
                   judges=lambda old, new: version_comparison(service.name, env, old, new, session,
                                                              prometheus_url or DEFAULT_PROMETHEUS_URL))


def rollout_for(
    service: Service, environment: str, *, clients: Clients, settings: StackSettings | None = None,
    strategy: str | None = None, version: str = "", image: str = "", fence: int | None = None,
    prometheus_url: str | None = None,
) -> Rollout:
    session = requests.Session()
    site = site_for(service, environment, clients=clients, settings=settings, session=session)
    return rollout_of(site, service, service.environments[environment], strategy=strategy, version=version, image=image,
                      session=session, fence=fence, prometheus_url=prometheus_url)


def version_comparison(service: str, env: Environment, old: str, new: str, session: requests.Session, url: str) -> Judge:
    """The post-promotion watch's judge: Prometheus at ``url`` (the deploy task passes Airflow's in
    $DEPLOYFLOW_PROMETHEUS_URL), read for the new version against the old."""
    # Imported when a watch runs, not with the deployer: the judge's numpy and scipy.
    from deployflow.analysis.comparison import VersionComparison
    from deployflow.metrics.prometheus import PrometheusProvider

    return VersionComparison(PrometheusProvider(url, session), service=service, environment=env.name, config=env.analysis,
                             watch=env.post_promotion, old=old, new=new)
