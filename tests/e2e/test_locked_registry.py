"""The locked registry, for real: a registry container of its own (``df-regtest-registry`` on 127.0.0.1:5999,
never the stack's), started by ``registry_up``. An anonymous push, pull or read is refused (401), a delete is
refused even to its user (405: deletes are off), and its user's push and pull work, through the engine, with the
credentials the pipeline sends. About 5 s once the registry's image is built.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator

import docker
import pytest
import requests

from deployflow.pipeline.build import BuiltImage, ImageSpec, push_image
from deployflow.pipeline.registry import RegistryCredentials, auth_config, pull_image
from deployflow.errors import StageFailed
from deployflow.settings import Settings
from deployflow.stack.containers import REGISTRY_CONTEXT, Registry, ensure_image, registry_down, registry_image, registry_up

pytestmark = pytest.mark.e2e

ADDR = "127.0.0.1:5999"
REPOSITORY = f"{ADDR}/regtest"
MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


@pytest.fixture
def registry(docker_client, tmp_path) -> Iterator[tuple[Registry, RegistryCredentials]]:
    ensure_image(docker_client, registry_image(), REGISTRY_CONTEXT, base_image=Settings.from_environ().base_image)
    place = Registry(container="df-regtest-registry", addr=ADDR, volume="df-regtest-registry-data",
                     credentials=tmp_path / "registry" / "credentials.json")
    registry_down(docker_client, place)  # an interrupted run's
    try:
        yield place, registry_up(docker_client, place)
    finally:
        registry_down(docker_client, place)
        try:
            docker_client.volumes.get(place.volume).remove(force=True)
        except docker.errors.NotFound:
            pass


@pytest.fixture
def tiny_image(docker_client) -> Iterator[str]:
    """A one-file image tagged for the test registry (imported from a tar: nothing to pull, nothing to build)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        content = b"locked\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    docker_client.api.import_image_from_data(data.getvalue(), repository=REPOSITORY, tag="v1")
    yield f"{REPOSITORY}:v1"
    try:
        docker_client.images.remove(f"{REPOSITORY}:v1", force=True)
    except docker.errors.ImageNotFound:
        pass


def push(docker_client, image: str, auth: dict[str, str] | None) -> BuiltImage:
    spec = ImageSpec(context="", dockerfile="", repository=REPOSITORY, tag=image.rsplit(":", 1)[1])
    return push_image(docker_client.api, BuiltImage(ref=image, image_id="", size_mb=0, seconds=0), spec, auth=auth)


def test_only_the_registry_s_user_may_push_and_pull_and_nobody_may_delete(docker_client, registry, tiny_image):
    place, credentials = registry
    login = (credentials.username, credentials.password)
    assert requests.get(f"http://{ADDR}/v2/", timeout=5).status_code == 401
    assert requests.get(f"http://{ADDR}/v2/", auth=login, timeout=5).status_code == 200

    with pytest.raises(StageFailed, match="push of .* failed: .*(no basic auth credentials|unauthorized|authentication required)"):
        push(docker_client, tiny_image, None)
    with pytest.raises(StageFailed, match="push of .* failed: .*unauthorized"):
        push(docker_client, tiny_image, {"username": credentials.username, "password": "not-the-password"})
    pushed = push(docker_client, tiny_image, auth_config(credentials, tiny_image))
    assert pushed.pushed and pushed.digest.startswith("sha256:")

    manifest = f"http://{ADDR}/v2/regtest/manifests/{pushed.digest}"
    assert requests.get(manifest, headers={"Accept": MANIFEST}, timeout=5).status_code == 401
    assert requests.get(manifest, headers={"Accept": MANIFEST}, auth=login, timeout=5).status_code == 200
    assert requests.delete(manifest, timeout=5).status_code == 401
    assert requests.delete(manifest, auth=login, timeout=5).status_code == 405  # storage.delete is off
    assert requests.get(manifest, headers={"Accept": MANIFEST}, auth=login, timeout=5).status_code == 200

    docker_client.images.remove(tiny_image, force=True)
    with pytest.raises(StageFailed, match="pull of .* failed: .*(no basic auth credentials|unauthorized|authentication required)"):
        pull_image(docker_client.api, tiny_image, None)
    assert pull_image(docker_client.api, tiny_image, auth_config(credentials, tiny_image)) == "pulled"

    earlier = docker_client.containers.get(place.container).id
    assert registry_up(docker_client, place) == credentials
    assert docker_client.containers.get(place.container).id == earlier, "an unchanged registry is not made again"
