"""Fakes shared by the unit tests: a docker client, an HTTP session, a clock, Airflow as the Releases view asks it.

Each records what it was asked so a test can assert the exact calls.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from docker.errors import APIError, ImageNotFound, NotFound

from deployflow.platforms.base import Instance, InstanceSpec
from deployflow.routers.base import Route

if TYPE_CHECKING:  # the view's package imports Airflow's configuration; these fakes stay without Airflow
    from deployflow.airflow.releases_view.board import RunStatus


class FakeContainer:
    """A fake docker Container: status, labels and attrs as given; records stop, remove and reload on its client."""

    def __init__(
        self, client: FakeDockerClient, name: str, *, image: str = "", labels: dict[str, str] | None = None,
        status: str = "running", exit_code: int = 0, logs: bytes = b"", stop_raises: bool = False,
    ) -> None:
        self.client = client
        self.name = name
        self.id = f"{name}-id"
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

    def put_archive(self, path: str, data: bytes) -> bool:
        self.client.calls.append(("put_archive", self.name, path, data))
        return True

    def start(self) -> None:
        self.client.calls.append(("start", self.name))
        self.status = "running"

    def logs(self, tail: int | None = None) -> bytes:
        self.client.calls.append(("logs", self.name, tail))
        return self._logs


class _FakeContainers:
    """The ``containers`` collection of FakeDockerClient; records run, create, list and get."""

    def __init__(self, client: FakeDockerClient) -> None:
        self.client = client

    def run(self, image: str, command: Any = None, **kwargs: Any) -> FakeContainer:
        self.client.calls.append(("run", image, command, kwargs))
        container = FakeContainer(self.client, kwargs["name"], image=image, labels=kwargs.get("labels"))
        self.client.by_name[container.name] = container
        return container

    def create(self, image: str, command: Any = None, **kwargs: Any) -> FakeContainer:
        self.client.calls.append(("create", image, command, kwargs))
        container = FakeContainer(self.client, kwargs["name"], image=image, labels=kwargs.get("labels"), status="created")
        self.client.by_name[container.name] = container
        return container

    def list(self, filters: dict[str, list[str]] | None = None, ignore_removed: bool = False, **kwargs: Any) -> list[FakeContainer]:
        # ignore_removed: the fake lists and "inspects" in one go, nothing is removed in between
        self.client.calls.append(("list", kwargs, filters))
        wanted = [tuple(f.split("=", 1)) for f in (filters or {}).get("label", [])]
        shown = [c for c in self.client.by_name.values() if kwargs.get("all") or c.status == "running"]
        return [c for c in shown if all(c.labels.get(k) == v for k, v in wanted)]

    def get(self, name: str) -> FakeContainer:
        self.client.calls.append(("get", name))
        if name not in self.client.by_name:
            raise NotFound(f"No such container: {name}")
        return self.client.by_name[name]


def image_id(ref: str) -> str:
    """The ID the fake engines give the image ``ref``."""
    return "sha256:" + hashlib.sha256(ref.encode()).hexdigest()


class FakeImageAPI:
    """The low-level API's images (``DockerClient.api``): every image is there, by ``image_id``, but those in
    ``absent`` until pulled; records pulls (a look-up changes nothing and is not recorded)."""

    def __init__(self, calls: list[tuple[Any, ...]], absent: set[str] | None = None) -> None:
        self.calls, self.absent = calls, set(absent or ())

    def inspect_image(self, image: str) -> dict[str, Any]:
        if image in self.absent:
            raise ImageNotFound(f"No such image: {image}")
        return {"Id": image_id(image)}

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any) -> None:
        self.calls.append(("pull", repository))
        self.absent.discard(repository)


class FakeDockerClient:
    """A fake docker.DockerClient: keeps containers by name; ``calls`` records every engine call in order."""

    def __init__(self) -> None:
        self.by_name: dict[str, FakeContainer] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.containers = _FakeContainers(self)
        self.api = FakeImageAPI(self.calls)

    def add(self, name: str, **kwargs: Any) -> FakeContainer:
        self.by_name[name] = FakeContainer(self, name, **kwargs)
        return self.by_name[name]

    def calls_of(self, kind: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if c[0] == kind]


class FakeDockerAPI:
    """A fake docker.APIClient running one container: it prints ``logs`` and exits with ``exit_code``.

    ``calls`` records every engine call in order; ``fail_on`` names a call that raises APIError; ``earlier``
    holds containers already on the engine (``containers()``'s dicts: Id, State, Labels), such as a killed
    try's deployer still running; stopped, they exit, and removed, they are gone.
    """

    def __init__(self, exit_code: int, logs: list[bytes], fail_on: str | None = None,
                 earlier: list[dict[str, Any]] | None = None) -> None:
        self.exit_code, self.logs, self.fail_on = exit_code, logs, fail_on
        self.calls: list[tuple[Any, ...]] = []
        self.created: dict[str, Any] = {}
        self.earlier = {c["Id"]: c for c in earlier or []}

    def containers(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:  # noqa: A002 - the API's name
        self._call("containers", sorted((filters or {}).get("label", [])))
        wanted = dict(label.split("=", 1) for label in (filters or {}).get("label", []))
        return [c for c in self.earlier.values() if all or c["State"] == "running"
                if wanted.items() <= c["Labels"].items()]

    def stop(self, container: str, timeout: int | None = None) -> None:
        self._call("stop", container, timeout)
        self.earlier[container]["State"] = "exited"

    def _call(self, *call: Any) -> None:
        self.calls.append(call)
        if call[0] == self.fail_on:
            raise APIError(f"{call[0]} failed")

    def images(self, name: str) -> list[dict]:
        return [{"Id": "sha256:deployer"}]  # present: nothing to pull

    def inspect_image(self, image: str) -> dict:
        return {"Id": image if image.startswith("sha256:") else "sha256:deployer"}

    def create_host_config(self, **config: Any) -> dict:
        return config

    def create_container(self, command: list[str], **kwargs: Any) -> dict:
        self._call("create_container", command, kwargs["labels"])
        self.created = kwargs  # the last container's image, user, host config...
        return {"Id": "c0ffee"}

    def attach(self, container: str, **kwargs: Any) -> list[bytes]:
        return self.logs

    def start(self, container: str) -> None:
        self._call("start", container)

    def wait(self, container: str) -> dict:
        self._call("wait", container)
        return {"StatusCode": self.exit_code, "Error": None}

    def inspect_container(self, container: str) -> dict:
        self._call("inspect_container", container)
        return {"Id": container, "State": {"Status": "exited", "ExitCode": self.exit_code, "OOMKilled": self.exit_code == 137}}

    def remove_container(self, container: str, force: bool = False) -> None:
        self._call("remove_container", container, force)
        self.earlier.pop(container, None)


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


class FakeAirflowState:
    """Airflow as the Releases view asks it (``releases_view.board.AirflowState``): the runs, the ad-hoc freeze's
    JSON and the teams given; records the runs it was asked for."""

    def __init__(self, runs: dict[tuple[str, str], RunStatus] | None = None, freeze: str | None = None,
                 teams: dict[str, str | None] | None = None) -> None:
        self.known, self.freeze, self.owners = dict(runs or {}), freeze, dict(teams or {})
        self.asked: list[set[tuple[str, str]]] = []

    def runs(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], RunStatus]:
        self.asked.append(set(keys))
        return {key: status for key, status in self.known.items() if key in keys}

    def freeze_variable(self) -> str | None:
        return self.freeze

    def teams(self, dag_ids: set[str]) -> dict[str, str | None]:
        return {d: team for d, team in self.owners.items() if d in dag_ids}



class FakeRunProgress:
    """How far Airflow says the runs got (``releases_view.in_flight.RunProgressState``): the progress given, by
    run; records the runs it was asked for."""

    def __init__(self, progress: dict | None = None) -> None:
        self.known = dict(progress or {})
        self.asked: list[set[tuple[str, str]]] = []

    def progress(self, keys: set[tuple[str, str]]) -> dict:
        self.asked.append(set(keys))
        return {key: found for key, found in self.known.items() if key in keys}

# ---- HAProxy's admin socket ------------------------------------------------------

HEADER = (
    "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight "
    "srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state "
    "bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr "
    "srv_agent_addr srv_agent_port\n"
)


def state_line(srv_id: int, name: str, port: int, weight: int, op: int = 2, admin: int = 0, backend: str = "app") -> str:
    """One line of ``show servers state`` as HAProxy 2.x prints it."""
    return f"3 {backend} {srv_id} {name} 127.0.0.1 {op} {admin} {weight} {weight} 2 15 3 2 6 0 0 0 - {port} - 0 0 - - 0\n"


def state_of(routes: dict[str, Route]) -> str:
    """The ``show servers state app`` answer of a proxy serving ``routes``."""
    return HEADER + "".join(state_line(i, r.name, r.port, r.weight) for i, r in enumerate(routes.values(), 1))


class FakeAdminSocket:
    """A fake AdminSocket: answers from a script per command (HAProxy's usual answer otherwise); records every command."""

    def __init__(self, state: str = HEADER, answers: dict[str, list[str]] | None = None, down_for: int = 0) -> None:
        self.state = state
        self.answers = answers or {}
        self.down_for = down_for  # how many sends fail as if the socket did not exist yet
        self.sent: list[str] = []

    def send(self, command: str) -> str:
        self.sent.append(command)
        if self.down_for:
            self.down_for -= 1
            raise FileNotFoundError(2, "No such file or directory")
        if command == "show servers state app":
            return self.state
        script = self.answers.get(command)
        if script:
            return script.pop(0) if len(script) > 1 else script[0]
        return {"add": "New server registered.", "del": "Server deleted."}.get(command.split()[0], "")


class BusyUntilCut(FakeAdminSocket):
    """A fake AdminSocket whose servers keep connections until their sessions are shut down; records commands."""

    def send(self, command: str) -> str:
        answer = super().send(command)
        if command.startswith("del server"):
            cut = f"shutdown sessions server {command.split()[-1]}" in self.sent
            return "Server deleted." if cut else "Server still has connections attached to it, cannot remove it."
        return answer


# ---- a platform and a router for Rollout ----------------------------------------

class FakePlatform:
    """A fake Platform: keeps instances in a dict, gives each a new port; records starts and stops in ``log``."""

    def __init__(self, log: list, session: FakeSession | None = None) -> None:
        self.by_name: dict[str, Instance] = {}
        self.log = log
        self.next_port = 20000
        self.session = session
        self.failing: set[str] = set()  # versions whose new instances answer 503 on ``session``

    def instances(self, service: str, environment: str) -> list[Instance]:
        return sorted(self.by_name.values(), key=lambda i: (i.colour, i.index))

    def start(self, spec: InstanceSpec) -> Instance:
        name = f"{spec.colour}-{spec.index}"
        current = self.by_name.get(name)
        if current and current.running and (current.version, current.image) == (spec.version, spec.image):
            return current
        self.log.append(("start", name, spec.version))
        self.by_name[name] = Instance(spec.service, spec.environment, spec.version, spec.image, spec.colour, spec.index,
                                      name=name, host="127.0.0.1", port=self.next_port, running=True)
        self.next_port += 1
        if spec.version in self.failing and self.session is not None:
            self.session.answers[self.by_name[name].url] = 503
        return self.by_name[name]

    def stop(self, instance: Instance, grace_s: int = 10) -> None:
        self.log.append(("stop", instance.name))
        self.by_name.pop(instance.name, None)

    def describe_failure(self, instance: Instance) -> str:
        return f"{instance.name} is a fake"


class FakeRouter:
    """A fake Router: keeps routes in a dict; records each set_routes call in ``log`` as {name: weight}."""

    def __init__(self, log: list) -> None:
        self.current: dict[str, Route] = {}
        self.log = log
        self.calls: list[dict[str, Route]] = []
        self.stat = {"frontend_req_tot": 0, "frontend_hrsp_5xx": 0, "backend_srv_abrt": 0, "backend_econ": 0,
                     "backend_eresp": 0, "backend_wretr": 0, "backend_wredis": 0}  # what counters() answers

    def counters(self) -> dict[str, int]:
        return dict(self.stat)

    def ensure(self) -> None:
        self.log.append(("ensure",))

    def routes(self) -> dict[str, Route]:
        return dict(self.current)

    def set_routes(self, routes) -> None:
        self.calls.append(dict(routes))
        self.current = dict(routes)
        self.log.append(("routes", {n: r.weight for n, r in sorted(routes.items())}))

    def remove(self) -> None:
        self.current = {}


class FakeEngine:
    """A fake of docker.APIClient's build/push/pull/inspect: replays chunks and records calls; the images in
    ``missing`` are not on the engine (until pulled)."""

    def __init__(self, build_chunks: list[dict[str, Any]], push_chunks: list[dict[str, Any]] | None = None, *,
                 pull_chunks: list[dict[str, Any]] | None = None, missing: set[str] | None = None) -> None:
        self.build_chunks = build_chunks
        self.push_chunks = push_chunks or []
        self.pull_chunks = pull_chunks or []
        self.missing = set(missing or ())
        self.calls: list[tuple[str, Any]] = []

    def build(self, **kwargs: Any):
        self.calls.append(("build", kwargs))
        return iter(self.build_chunks)

    def push(self, repository: str, tag: str | None = None, **kwargs: Any):
        self.calls.append(("push", (repository, tag, kwargs)))
        return iter(self.push_chunks)

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any):
        self.calls.append(("pull", (repository, tag, kwargs)))
        return iter(self.pull_chunks)

    def inspect_image(self, image: str) -> dict[str, Any]:
        self.calls.append(("inspect", image))
        if image in self.missing:
            raise ImageNotFound(f"No such image: {image}")
        return {"Id": "sha256:" + "e" * 64, "Size": 150 * 2**20}
