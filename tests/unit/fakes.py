"""Fakes shared by the unit tests: a docker client, an HTTP session and a clock.

Each records what it was asked so a test can assert the exact calls.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from docker.errors import NotFound


class FakeContainer:
    """A fake docker Container: status, labels and attrs as given; records stop, remove and reload on its client."""

    def __init__(
        self, client: FakeDockerClient, name: str, *, image: str = "", labels: dict[str, str] | None = None,
        status: str = "running", exit_code: int = 0, logs: bytes = b"", stop_raises: bool = False,
    ) -> None:
        self.client = client
        self.name = name
        self.labels = dict(labels or {})
        self.status = status
        self.attrs = {"Config": {"Image": image}, "State": {"Status": status, "ExitCode": exit_code}}
        self._logs = logs
        self.stop_raises = stop_raises

    def stop(self, timeout: int | None = None) -> None:
        self.client.calls.append(("stop", self.name, timeout))
        if self.stop_raises:
            raise NotFound(f"No such container: {self.name}")
        self.status = "exited"

    def remove(self, force: bool = False) -> None:
        self.client.calls.append(("remove", self.name, force))
        self.client.by_name.pop(self.name, None)

    def reload(self) -> None:
        self.client.calls.append(("reload", self.name))

    def logs(self, tail: int | None = None) -> bytes:
        self.client.calls.append(("logs", self.name, tail))
        return self._logs


class _FakeContainers:
    """The ``containers`` collection of FakeDockerClient; records run, list and get."""

    def __init__(self, client: FakeDockerClient) -> None:
        self.client = client

    def run(self, image: str, command: Any = None, **kwargs: Any) -> FakeContainer:
        self.client.calls.append(("run", image, command, kwargs))
        container = FakeContainer(self.client, kwargs["name"], image=image, labels=kwargs.get("labels"))
        self.client.by_name[container.name] = container
        return container

    def list(self, filters: dict[str, list[str]] | None = None, **kwargs: Any) -> list[FakeContainer]:
        self.client.calls.append(("list", kwargs, filters))
        wanted = [tuple(f.split("=", 1)) for f in (filters or {}).get("label", [])]
        shown = [c for c in self.client.by_name.values() if kwargs.get("all") or c.status == "running"]
        return [c for c in shown if all(c.labels.get(k) == v for k, v in wanted)]

    def get(self, name: str) -> FakeContainer:
        self.client.calls.append(("get", name))
        if name not in self.client.by_name:
            raise NotFound(f"No such container: {name}")
        return self.client.by_name[name]


class FakeDockerClient:
    """A fake docker.DockerClient: keeps containers by name; ``calls`` records every engine call in order."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeContainer] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.containers = _FakeContainers(self)

    def add(self, name: str, **kwargs: Any) -> FakeContainer:
        self.by_name[name] = FakeContainer(self, name, **kwargs)
        return self.by_name[name]

    def calls_of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class FakeResponse:
    """A fake requests.Response: a status code, a text and headers."""

    def __init__(self, status_code: int, text: str = "", headers: dict[str, str] | None = None) -> None:
        self.status_code = status_code
        self.text = text
        self.headers = headers or {}


class FakeSession:
    """A fake requests.Session: answers each GET from a script per exact URL or per base URL; records URLs asked.

    A script is a status code, a FakeResponse, an exception to raise, or a list of
    those used in turn (the last one repeats).
    """

    def __init__(self, answers: dict[str, Any] | None = None, default: Any = 200) -> None:
        self.answers = dict(answers or {})
        self.default = default
        self.asked: list[str] = []

    def get(self, url: str, timeout: float | None = None, **kwargs: Any) -> FakeResponse:
        self.asked.append(url)
        parts = urlsplit(url)
        base = f"{parts.scheme}://{parts.netloc}"
        script = self.answers.get(url, self.answers.get(base, self.default))
        answer = (script.pop(0) if len(script) > 1 else script[0]) if isinstance(script, list) else script
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, int):
            return FakeResponse(answer, "ok" if answer < 300 else "down")
        return answer


class FakeClock:
    """A fake clock: ``monotonic()`` returns fake time that only ``sleep`` moves; records each sleep."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
