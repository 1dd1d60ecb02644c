"""DockerOperator with the least privilege every container of a release gets (``platforms/hardening.py``).

The Docker provider's operator has parameters for ``mem_limit``, ``cap_add`` and ``user`` only; ``cap_drop``,
``security_opt``, ``pids_limit``, ``memswap_limit`` and ``group_add`` are arguments of the docker SDK's
``create_host_config``, which the operator calls on its engine client: ``HardenedEngine`` is that client with
them added. The image runs by ID: resolved once when the task runs, a tag moved later moves nothing started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.docker.operators.docker import DockerOperator

from deployflow.platforms.hardening import Limits, hardening, pinned

if TYPE_CHECKING:
    from airflow.sdk import Context


class HardenedEngine:
    """A ``docker.APIClient`` whose host configs carry ``options``, and which finds an image by its ID (the
    provider looks an image up by name before pulling it, and an ID is no name); the rest is the client's."""

    def __init__(self, api: Any, options: dict[str, Any]) -> None:
        self.api, self.options = api, options

    def create_host_config(self, **kwargs: Any) -> Any:
        return self.api.create_host_config(**{**kwargs, **self.options})

    def images(self, name: str | None = None, **kwargs: Any) -> list[dict[str, Any]]:
        if name and name.startswith("sha256:"):
            return [self.api.inspect_image(name)]  # pinned() found it on this engine just before
        return self.api.images(name=name, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.api, name)


class HardenedDockerOperator(DockerOperator):
    """A DockerOperator whose container has no capabilities, no new privileges, ``limits``, and its image by ID.

    :param limits: the container's memory and pids (``platforms/hardening.py``'s table).
    """

    def __init__(self, *, limits: Limits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limits = limits
        self.group_add: tuple[int, ...] = ()  # supplementary groups: the deployer's Docker socket's

    @property
    def cli(self) -> Any:
        # ``user`` stays the operator's own parameter (create_container's, not the host config's).
        return HardenedEngine(super().cli, hardening(self.limits, group_add=self.group_add))

    def execute(self, context: Context) -> Any:
        self.image = pinned(self.cli, self.image)
        return super().execute(context)
