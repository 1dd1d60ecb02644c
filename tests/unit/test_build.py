from __future__ import annotations

from typing import Any

import docker
import pytest
import requests
from docker.errors import APIError

from deployflow.pipeline.build import ImageSpec, build_image, build_kwargs, image_spec, push_image
from deployflow.catalog import parse_service
from deployflow.pipeline.checkout import Checkout
from deployflow.errors import ConfigError, StageFailed
from tests.unit.fakes import FakeEngine

SERVICE = parse_service({
    "name": "shop",
    "source": {"repo": "/srv/shop", "context": "services/shop"},
    "build": {"args": {"PIP_INDEX": "x"}},
    "environments": {"dev": {"port": 18101}},
})
SOURCE = Checkout(sha="0123456789abcdef0123456789abcdef01234567", ref="main", path="/ws/src", seconds=0.1)


def spec(registry: str | None = "127.0.0.1:5000"):
    return image_spec(SERVICE, SOURCE, branch="main", build_type="release", base_image="deployflow/base:bookworm", registry=registry)


def test_spec_tags_by_commit_and_names_the_registry():
    s = spec()
    assert s.ref == "127.0.0.1:5000/shop:0123456789ab"
    assert spec(None).ref == "shop:0123456789ab"
    assert s.context == "/ws/src/services/shop"
    assert s.build_args == {
        "PIP_INDEX": "x",
        "BASE_IMAGE": "deployflow/base:bookworm",
        "APP_COMMIT": SOURCE.sha,
        "APP_BRANCH": "main",
        "BUILD_TYPE": "release",
    }
    assert s.labels["org.opencontainers.image.revision"] == SOURCE.sha


def test_unknown_build_type_is_refused():
    with pytest.raises(ValueError, match="valid values are release, nightly"):
        image_spec(SERVICE, SOURCE, branch="main", build_type="weekly", base_image="b")


def test_build_arguments_are_exact():
    assert build_kwargs(spec()) == {
        "path": "/ws/src/services/shop",
        "dockerfile": "Dockerfile",
        "tag": "127.0.0.1:5000/shop:0123456789ab",
        "buildargs": spec().build_args,
        "labels": spec().labels,
        "network_mode": "none",  # RUN steps can sniff no loopback: they keep NET_RAW (the build API drops none)
        "container_limits": {"memory": 2 * 2**30, "memswap": 2 * 2**30},
        "rm": True,
        "forcerm": True,
        "pull": False,
        "decode": True,
        "timeout": 900,
    }


def test_build_then_push_reports_the_digest():
    engine = FakeEngine(
        [{"stream": "Step 1/2 : FROM base\n"}, {"stream": "Successfully built e\n"}],
        [{"status": "Pushed"}, {"aux": {"Tag": "0123456789ab", "Digest": "sha256:abc", "Size": 1}}],
    )
    built = build_image(engine, spec())
    assert (built.ref, built.size_mb, built.pushed) == ("127.0.0.1:5000/shop:0123456789ab", 150.0, False)
    pushed = push_image(engine, built, spec())
    assert (pushed.digest, pushed.pushed) == ("sha256:abc", True)
    assert [c[0] for c in engine.calls] == ["build", "inspect", "push"]
    assert engine.calls[2][1][:2] == ("127.0.0.1:5000/shop", "0123456789ab")


def test_a_failed_step_quotes_the_error_and_the_output_before_it():
    engine = FakeEngine([
        {"stream": "Step 3/5 : RUN make\n"},
        {"stream": "make: *** No rule to make target\n"},
        {"error": "The command '/bin/sh -c make' returned a non-zero code: 2",
         "errorDetail": {"message": "The command '/bin/sh -c make' returned a non-zero code: 2"}},
    ])
    with pytest.raises(StageFailed) as caught:
        build_image(engine, spec())
    text = str(caught.value)
    assert "build of 127.0.0.1:5000/shop:0123456789ab failed: The command '/bin/sh -c make' returned a non-zero code: 2" in text
    assert "make: *** No rule to make target" in text
    assert [c[0] for c in engine.calls] == ["build"]


@pytest.mark.parametrize(
    ("chunks", "says"),
    [
        ([{"error": "denied: requested access to the resource is denied"}], "push of .* failed: denied"),
        ([{"status": "Pushed"}], "ended without a digest"),
    ],
)
def test_push_failures_are_clear(chunks, says):
    engine = FakeEngine([], chunks)
    built = build_image(FakeEngine([{"stream": "ok"}]), spec())
    with pytest.raises(StageFailed, match=says):
        push_image(engine, built, spec())


# ---- what the engine may be sent: the checkout's own files, nothing else ----------------------------

def checkout_with(tmp_path, links: dict[str, str]) -> Checkout:
    """A checkout holding services/shop/Dockerfile, a secret beside the checkout, and ``links`` (name -> target)."""
    src = tmp_path / "src"
    (src / "services" / "shop").mkdir(parents=True)
    (src / "services" / "shop" / "Dockerfile").write_text("FROM base\n")
    (src / "README").write_text("not a Dockerfile\n")
    (tmp_path / "secret").write_text("root:$y$not-for-the-log\n")
    for name, target in links.items():
        (src / name).symlink_to(target)
    return Checkout(sha=SOURCE.sha, ref="main", path=str(src), seconds=0.1)


def service_building(context: str, dockerfile: str):
    return parse_service({"name": "shop", "source": {"repo": "/srv/shop", "context": context},
                          "build": {"dockerfile": dockerfile}, "environments": {"dev": {"port": 18101}}})


@pytest.mark.parametrize(("links", "context", "dockerfile", "error"), [
    ({"services/shop/Dockerfile.evil": "../../../secret"}, "services/shop", "Dockerfile.evil",
     "build.dockerfile: 'Dockerfile.evil' resolves outside the build context 'services/shop' (through a symlink)"),
    ({"services/shop/up": "../../README"}, "services/shop", "up",  # inside the checkout, outside the context
     "build.dockerfile: 'up' resolves outside the build context 'services/shop' (through a symlink)"),
    ({"outside": ".."}, "outside", "secret",
     "source.context: 'outside' resolves outside the checkout (through a symlink)"),
    ({"etc": "/etc"}, "etc", "passwd", "source.context: 'etc' resolves outside the checkout (through a symlink)"),
])
def test_a_symlink_out_of_the_checkout_or_context_is_refused_before_any_docker_call(tmp_path, links, context, dockerfile, error):
    source = checkout_with(tmp_path, links)
    with pytest.raises(ConfigError) as caught:
        image_spec(service_building(context, dockerfile), source, branch="main", build_type="release", base_image="b")
    assert str(caught.value).startswith(error)
    assert "not-for-the-log" not in str(caught.value)


def test_a_symlink_that_stays_inside_is_built_from_its_real_place(tmp_path):
    source = checkout_with(tmp_path, {"shop": "services/shop", "services/shop/Dockerfile.link": "Dockerfile"})
    s = image_spec(service_building("shop", "Dockerfile.link"), source, branch="main", build_type="release", base_image="b")
    assert (s.context, s.dockerfile) == (str((tmp_path / "src" / "services" / "shop").resolve()), "Dockerfile")


def test_build_image_checks_a_hand_made_spec_too(tmp_path):
    checkout_with(tmp_path, {})
    engine = FakeEngine([{"stream": "ok"}])
    bad = ImageSpec(context=str(tmp_path / "src"), dockerfile="../secret", repository="shop", tag="x")
    with pytest.raises(ConfigError, match="build.dockerfile: '../secret' resolves outside the build context"):
        build_image(engine, bad)
    assert engine.calls == []


class RefusingEngine(FakeEngine):
    """The engine answers the build with an HTTP error, as docker.APIClient raises it."""

    def __init__(self, error: Exception) -> None:
        super().__init__([])
        self.error = error

    def build(self, **kwargs: Any):
        self.calls.append(("build", kwargs))
        raise self.error


@pytest.mark.parametrize(("error", "says"), [
    (APIError("500 Server Error", explanation="dockerfile parse error on line 1:\nunknown instruction: X"),
     "build of 127.0.0.1:5000/shop:0123456789ab failed: APIError: dockerfile parse error on line 1: unknown instruction: X"),
    (requests.exceptions.ReadTimeout("read timed out"),
     "build of 127.0.0.1:5000/shop:0123456789ab failed: ReadTimeout: read timed out"),
    (APIError("500 Server Error", explanation="x" * 1000),
     "build of 127.0.0.1:5000/shop:0123456789ab failed: APIError: " + "x" * 300 + "..."),
])
def test_an_engine_error_is_the_stages_one_line_error(error, says):
    with pytest.raises(StageFailed) as caught:
        build_image(RefusingEngine(error), spec())
    assert str(caught.value) == says


def test_no_engine_at_all_is_one_line_from_the_real_sdk(tmp_path):
    """The docker SDK itself, on a socket nothing listens on."""
    client = docker.APIClient(base_url=f"unix://{tmp_path}/no-engine.sock", version="1.47", timeout=5)
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM base\n")
    local = ImageSpec(context=str(tmp_path / "ctx"), dockerfile="Dockerfile", repository="shop", tag="x")
    with pytest.raises(StageFailed) as caught:
        build_image(client, local)
    message = str(caught.value)
    assert message.startswith("build of shop:x failed: ConnectionError: ") and "\n" not in message


def test_a_push_the_engine_refuses_is_one_line():
    class NoPush(FakeEngine):
        def push(self, repository: str, tag: str | None = None, **kwargs: Any):
            raise APIError("500 Server Error", explanation="Get http://127.0.0.1:5000/v2/: connection refused")

    built = build_image(FakeEngine([{"stream": "ok"}]), spec())
    with pytest.raises(StageFailed, match="^push of 127.0.0.1:5000/shop:0123456789ab failed: APIError: Get http"):
        push_image(NoPush([]), built, spec())
