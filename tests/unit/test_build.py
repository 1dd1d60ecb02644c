from __future__ import annotations

from typing import Any

import pytest

from deployflow.build import build_image, build_kwargs, image_spec, push_image
from deployflow.catalog import parse_service
from deployflow.checkout import Checkout
from deployflow.errors import StageFailed

SERVICE = parse_service({
    "name": "shop",
    "source": {"repo": "/srv/shop", "context": "services/shop"},
    "build": {"args": {"PIP_INDEX": "x"}},
    "environments": {"dev": {"port": 18101}},
})
SOURCE = Checkout(sha="0123456789abcdef0123456789abcdef01234567", ref="main", path="/ws/src", seconds=0.1)


class FakeEngine:
    """A fake of docker.APIClient's build/push/inspect: replays chunks and records calls."""

    def __init__(self, build_chunks: list[dict[str, Any]], push_chunks: list[dict[str, Any]] | None = None) -> None:
        self.build_chunks = build_chunks
        self.push_chunks = push_chunks or []
        self.calls: list[tuple[str, Any]] = []

    def build(self, **kwargs: Any):
        self.calls.append(("build", kwargs))
        return iter(self.build_chunks)

    def push(self, repository: str, tag: str | None = None, **kwargs: Any):
        self.calls.append(("push", (repository, tag, kwargs)))
        return iter(self.push_chunks)

    def inspect_image(self, image: str) -> dict[str, Any]:
        self.calls.append(("inspect", image))
        return {"Id": "sha256:" + "e" * 64, "Size": 150 * 2**20}


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
        "network_mode": "host",
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
