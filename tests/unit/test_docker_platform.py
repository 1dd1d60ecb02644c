from __future__ import annotations

import io

import docker
import socket
import tarfile

import pytest

from deployflow.configuration import ResolvedConfig, Resources
from deployflow.platforms.base import Instance, InstanceSpec, other_colour
from deployflow.platforms.docker import DockerWorkload
from deployflow.platforms.docker_engine import (
    DockerPlatform,
    config_archive,
    container_name,
    first_port,
    free_port,
    labels,
    run_kwargs,
)
from deployflow.record import StepFailed, Target
from deployflow.platforms.config_files import ConfigFiles
from deployflow.catalog import Health
from tests.unit.fakes import FakeDockerClient, image_id

SPEC = InstanceSpec("shop", "prod", "v2", "reg/shop:v2", "green", 1, env={"LOG_LEVEL": "debug"})


def free_ports(count: int) -> int:
    """The first port of ``count`` consecutive ports nothing on 127.0.0.1 holds now."""
    for base in range(41000, 60000, count):
        try:
            held = []
            for port in range(base, base + count):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise AssertionError("no free ports for the test")


def app_labels(stack: str, version: str, colour: str, index: int, port: int, service: str = "shop") -> dict[str, str]:
    return labels(stack, InstanceSpec(service, "prod", version, f"reg/{service}:{version}", colour, index), port)


def test_run_kwargs_exact():
    assert container_name("t", SPEC) == "df-t-shop-prod-green-1"
    assert run_kwargs("t", SPEC, 20005, image="reg/shop@sha256:2") == {
        "image": "reg/shop@sha256:2",
        "name": "df-t-shop-prod-green-1",
        "network_mode": "host",
        "environment": {"LOG_LEVEL": "debug", "PORT": "20005", "BIND": "127.0.0.1", "APP_TRACK": "green"},
        "labels": {
            "io.deployflow.stack": "t", "io.deployflow.role": "app", "io.deployflow.service": "shop",
            "io.deployflow.environment": "prod", "io.deployflow.version": "v2", "io.deployflow.colour": "green",
            "io.deployflow.index": "1", "io.deployflow.port": "20005", "io.deployflow.image": "reg/shop:v2",
        },
        "restart_policy": {"Name": "unless-stopped"},
        "stop_signal": "SIGTERM",
        "nano_cpus": 500_000_000, "mem_limit": 2**30, "memswap_limit": 2**30, "pids_limit": 512,  # the seed's defaults
        "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"],
    }


def test_run_kwargs_take_the_environments_limits_and_point_at_the_files():
    spec = InstanceSpec("shop", "prod", "v2", "img", "blue", 0, env={"A": "1"}, files={"app.toml": "x"},
                        resources=Resources(cpu="1.5", memory="256Mi", pids=64))
    kwargs = run_kwargs("t", spec, 20001, image="img")
    assert (kwargs["nano_cpus"], kwargs["mem_limit"], kwargs["memswap_limit"], kwargs["pids_limit"]) == (
        1_500_000_000, 256 * 2**20, 256 * 2**20, 64)
    assert kwargs["environment"] == {"A": "1", "CONFIG_DIR": "/run/deployflow/config", "PORT": "20001", "BIND": "127.0.0.1",
                                     "APP_TRACK": "blue"}


def test_config_archive_holds_the_files_readable_in_the_config_dir():
    with tarfile.open(fileobj=io.BytesIO(config_archive({"b.json": "{}", "a.key": "k"}))) as tar:
        members = {m.name: (m.type, oct(m.mode)) for m in tar.getmembers()}
        assert tar.extractfile("run/deployflow/config/a.key").read() == b"k"
    assert members == {"run": (tarfile.DIRTYPE, "0o755"), "run/deployflow": (tarfile.DIRTYPE, "0o755"),
                       "run/deployflow/config": (tarfile.DIRTYPE, "0o755"),
                       "run/deployflow/config/a.key": (tarfile.REGTYPE, "0o444"),
                       "run/deployflow/config/b.json": (tarfile.REGTYPE, "0o444")}


def test_spec_env_cannot_override_the_port_convention():
    spec = InstanceSpec("shop", "prod", "v2", "img", "blue", 0, env={"PORT": "80", "BIND": "0.0.0.0"})
    assert run_kwargs("t", spec, 20001, image="img")["environment"] == {"PORT": "20001", "BIND": "127.0.0.1", "APP_TRACK": "blue"}


def test_start_runs_a_new_container_on_a_port_no_other_instance_holds():
    base = free_ports(4)
    client = FakeDockerClient()
    # other instances, of this and another stack, hold the first two ports by label
    client.add("df-t-shop-prod-blue-0", image="reg/shop:v1", labels=app_labels("t", "v1", "blue", 0, base))
    client.add("df-u-cart-prod-blue-0", image="reg/cart:v1", labels=app_labels("u", "v1", "blue", 0, base + 1, "cart"))
    platform = DockerPlatform(client, stack="t", ports=(base, base + 3))
    instance = platform.start(SPEC)
    assert client.calls == [
        ("get", "df-t-shop-prod-green-1"),
        ("list", {"all": True}, {"label": ["io.deployflow.role=app"]}),
        ("create", image_id("reg/shop:v2"), None,  # the tag's image by ID: a tag moved later moves nothing started
         {k: v for k, v in run_kwargs("t", SPEC, base + 2, image="").items() if k != "image"}),
        ("list", {"all": True}, {"label": ["io.deployflow.role=app", f"io.deployflow.port={base + 2}"]}),  # its claim first
        ("start", "df-t-shop-prod-green-1"),
        ("reload", "df-t-shop-prod-green-1"),
    ]
    assert instance == Instance("shop", "prod", "v2", "reg/shop:v2", "green", 1, name="df-t-shop-prod-green-1",
                                host="127.0.0.1", port=base + 2, running=True)
    assert instance.url == f"http://127.0.0.1:{base + 2}"


def test_start_returns_a_running_container_of_the_same_version_untouched():
    client = FakeDockerClient()
    client.add("df-t-shop-prod-green-1", image="reg/shop:v2", labels=app_labels("t", "v2", "green", 1, 20007))
    instance = DockerPlatform(client, stack="t").start(SPEC)
    assert client.calls == [("get", "df-t-shop-prod-green-1")]
    assert (instance.port, instance.running, instance.version) == (20007, True, "v2")


@pytest.mark.parametrize(
    ("status", "version", "image"),
    [
        ("exited", "v2", "reg/shop:v2"),  # crashed: started again
        ("running", "v1", "reg/shop:v1"),  # an earlier release's leftover under the same name
        ("running", "v2", "reg/shop:v2-rebuilt"),  # same version tag, other image
    ],
)
def test_start_replaces_a_container_that_is_not_the_wanted_one(status, version, image):
    base = free_ports(2)
    client = FakeDockerClient()
    client.add("df-t-shop-prod-green-1", image=image, status=status,
               labels={**app_labels("t", version, "green", 1, base), "io.deployflow.image": image})
    instance = DockerPlatform(client, stack="t", ports=(base, base + 1)).start(SPEC)
    assert [c[:2] for c in client.calls] == [
        ("get", "df-t-shop-prod-green-1"), ("remove", "df-t-shop-prod-green-1"), ("list", {"all": True}),
        ("create", image_id("reg/shop:v2")), ("list", {"all": True}), ("start", "df-t-shop-prod-green-1"), ("reload", "df-t-shop-prod-green-1"),
    ]
    assert client.calls_of("remove") == [("remove", "df-t-shop-prod-green-1", True)]
    # the removed container's port is free again
    assert (instance.version, instance.image, instance.port) == ("v2", "reg/shop:v2", base)


def test_instances_are_read_from_labels_and_sorted():
    client = FakeDockerClient()
    client.add("df-t-shop-prod-green-1", image="reg/shop:v2", labels=app_labels("t", "v2", "green", 1, 20003))
    client.add("df-t-shop-prod-blue-1", image="reg/shop:v1", labels=app_labels("t", "v1", "blue", 1, 20001))
    client.add("df-t-shop-prod-green-0", image="reg/shop:v2", status="exited", labels=app_labels("t", "v2", "green", 0, 20002))
    client.add("df-t-shop-prod-blue-0", image="reg/shop:v1", labels=app_labels("t", "v1", "blue", 0, 20000))
    client.add("df-u-shop-prod-blue-0", image="reg/shop:v0", labels=app_labels("u", "v0", "blue", 0, 20009))
    client.add("df-t-cart-prod-blue-0", image="reg/cart:v1", labels=app_labels("t", "v1", "blue", 0, 20008, "cart"))
    found = DockerPlatform(client, stack="t").instances("shop", "prod")
    assert client.calls == [("list", {"all": True}, {"label": [
        "io.deployflow.role=app", "io.deployflow.stack=t", "io.deployflow.service=shop", "io.deployflow.environment=prod",
    ]})]
    assert [(i.name, i.version, i.image, i.colour, i.index, i.port, i.running) for i in found] == [
        ("df-t-shop-prod-blue-0", "v1", "reg/shop:v1", "blue", 0, 20000, True),
        ("df-t-shop-prod-blue-1", "v1", "reg/shop:v1", "blue", 1, 20001, True),
        ("df-t-shop-prod-green-0", "v2", "reg/shop:v2", "green", 0, 20002, False),
        ("df-t-shop-prod-green-1", "v2", "reg/shop:v2", "green", 1, 20003, True),
    ]


def instance(name: str = "df-t-shop-prod-green-1") -> Instance:
    return Instance("shop", "prod", "v2", "reg/shop:v2", "green", 1, name=name, host="127.0.0.1", port=20003, running=True)


def test_stop_stops_with_grace_then_removes():
    client = FakeDockerClient()
    client.add("df-t-shop-prod-green-1")
    DockerPlatform(client, stack="t").stop(instance(), grace_s=4)
    assert client.calls == [("get", "df-t-shop-prod-green-1"), ("stop", "df-t-shop-prod-green-1", 4),
                            ("remove", "df-t-shop-prod-green-1", True)]


def test_stop_of_a_container_that_is_gone_is_fine():
    client = FakeDockerClient()
    DockerPlatform(client, stack="t").stop(instance())
    assert client.calls == [("get", "df-t-shop-prod-green-1")]


def test_stop_of_a_container_that_vanishes_while_stopping_is_fine():
    client = FakeDockerClient()
    client.add("df-t-shop-prod-green-1", stop_raises=True)
    DockerPlatform(client, stack="t").stop(instance())
    assert client.calls_of("remove") == []


def test_describe_failure_gives_exit_code_and_last_log_lines():
    client = FakeDockerClient()
    client.add("df-t-shop-prod-green-1", status="exited", exit_code=3, logs=b"starting\nboom: bad config\n")
    platform = DockerPlatform(client, stack="t")
    assert platform.describe_failure(instance()) == (
        "df-t-shop-prod-green-1 is exited (exit code 3); last log lines: starting | boom: bad config")
    assert client.calls_of("logs") == [("logs", "df-t-shop-prod-green-1", 5)]
    assert platform.describe_failure(instance("df-gone")) == "df-gone no longer exists"


def test_free_port_skips_taken_and_listening_ports():
    base = free_ports(4)
    assert free_port([], base, base + 3) == base
    assert free_port([base, base + 1], base, base + 3) == base + 2
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", base))
        listener.listen()
        assert free_port([base + 1], base, base + 3) == base + 2


def test_free_port_from_a_start_goes_round_to_the_port_before_it():
    base = free_ports(4)
    assert free_port([], base, base + 3, start=base + 2) == base + 2
    assert free_port([base + 2, base + 3], base, base + 3, start=base + 2) == base
    assert free_port([base + 3, base], base, base + 3, start=base + 3) == base + 1


def test_each_stack_starts_at_its_own_point_of_the_range():
    starts = {stack: first_port(stack, 20000, 20999) for stack in ("local", "e2e", "celery", "demo", "bench")}
    assert all(20000 <= port <= 20999 for port in starts.values())
    assert len(set(starts.values())) == len(starts), starts
    assert first_port("e2e", 20000, 20999) == starts["e2e"]  # fixed by the name: the same on every host and run
    # "t" of the tests here starts at the first port of their small ranges
    assert (first_port("t", 100, 103), first_port("t", 100, 101)) == (100, 100)


def test_free_port_says_when_the_range_is_full():
    base = free_ports(2)
    with pytest.raises(RuntimeError, match=f"no free port left in {base}-{base + 1} on 127.0.0.1"):
        free_port([base, base + 1], base, base + 1)


def test_colours():
    assert (other_colour("blue"), other_colour("green")) == ("green", "blue")


def test_start_puts_the_configuration_files_in_before_the_container_starts():
    base = free_ports(1)
    client = FakeDockerClient()
    spec = InstanceSpec("shop", "prod", "v2", "reg/shop:v2", "green", 1, files={"app.toml": "x = 1"})
    DockerPlatform(client, stack="t", ports=(base, base)).start(spec)
    assert [c[0] for c in client.calls] == ["get", "list", "create", "list", "put_archive", "start", "reload"]
    assert client.calls_of("put_archive") == [("put_archive", "df-t-shop-prod-green-1", "/", config_archive({"app.toml": "x = 1"}))]


def test_scale_gives_new_instances_their_releases_configuration(tmp_path):
    base = free_ports(2)
    client = FakeDockerClient()
    configs = ConfigFiles(tmp_path / "config")
    configs.save("0123456789ab", ResolvedConfig(env={"GREETING": "hi", "API_KEY": "s3cret"}, files={"a.txt": "A"},
                                                secret=frozenset({"API_KEY"})))
    workload = DockerWorkload(DockerPlatform(client, stack="t", ports=(base, base + 1)), service="shop", environment="prod",
                              health_config=Health(), session=None, configs=configs, resources=Resources(pids=99))
    workload.scale("green", 1, Target("c0ffee0c0ffe-c0123456789ab", "reg/shop:c0ffee"), "stable")
    workload.scale("blue", 1, Target("c0ffee0c0ffe", "reg/shop:c0ffee"), "stable")  # a release with no configuration
    (_, _, _, with_config), (_, _, _, without) = client.calls_of("create")
    assert with_config["environment"] == {"GREETING": "hi", "API_KEY": "s3cret", "CONFIG_VERSION": "0123456789ab",
                                          "CONFIG_DIR": "/run/deployflow/config", "PORT": str(base), "BIND": "127.0.0.1",
                                          "APP_TRACK": "green"}
    assert with_config["pids_limit"] == 99
    assert without["environment"] == {"PORT": str(base + 1), "BIND": "127.0.0.1", "APP_TRACK": "blue"}
    assert len(client.calls_of("put_archive")) == 1


def test_scale_to_a_configuration_this_host_never_got_fails_the_step_before_starting_anything(tmp_path):
    client = FakeDockerClient()
    workload = DockerWorkload(DockerPlatform(client, stack="t"), service="shop", environment="prod", health_config=Health(),
                              session=None, configs=ConfigFiles(tmp_path / "config"))
    with pytest.raises(StepFailed, match="configuration 0123456789ab is not on this host"):
        workload.scale("green", 1, Target("c0ffee0c0ffe-c0123456789ab", "img"), "stable")
    assert client.calls_of("create") == []


def test_start_pulls_a_version_the_engine_has_never_run_then_creates_it():
    from docker.errors import ImageNotFound

    client = FakeDockerClient()
    pulled = []
    create = client.containers.create

    def create_once_pulled(image, command=None, **kwargs):
        if image not in pulled:
            raise ImageNotFound(f"No such image: {image}")
        return create(image, command, **kwargs)

    client.containers.create = create_once_pulled
    client.images = type("Images", (), {"pull": staticmethod(pulled.append)})()
    pushed = InstanceSpec("shop", "prod", "v2", "reg/shop:v2@sha256:2", "green", 1)
    started = DockerPlatform(client, stack="t").start(pushed)
    assert pulled == ["reg/shop:v2@sha256:2"]  # the image by the reference deployed, with its digest
    assert started.running and started.image == "reg/shop:v2@sha256:2"


def test_a_container_removed_between_the_engine_s_list_and_its_inspect_is_gone_not_an_error():
    # The real client over a scripted engine API: another release removes its container between the list and the
    # inspect of it (50 releases at once on one engine failed a step with "404 No such container" that way).
    client = docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41")
    ours = {"Id": "a" * 64, "Name": "/local-shop-prod-green-1", "Config": {"Labels": labels("local", SPEC, 40123),
                                                                         "Image": "reg/shop:v2"},
        "State": {"Status": "running", "Running": True, "Health": {"Status": "healthy"}}, "RestartCount": 0}
    gone = "b" * 64
    client.api.containers = lambda **kwargs: [{"Id": gone}, {"Id": ours["Id"]}]

    def inspect_container(container_id: str) -> dict:
        if container_id == gone:
            raise docker.errors.NotFound("No such container: " + gone)
        return ours

    client.api.inspect_container = inspect_container
    assert [i.name for i in DockerPlatform(client, stack="local").instances("shop", "prod")] == ["local-shop-prod-green-1"]


def claimed(client: FakeDockerClient, name: str, port: int, created: str) -> None:
    client.add(name, image="reg/shop:v1", status="created", labels=app_labels("u", "v1", "blue", 0, port, "cart"))
    client.by_name[name].attrs["Created"] = created


def test_two_releases_that_choose_the_same_free_port_at_once_never_both_keep_it():
    # Another release's deployer on this engine listed the same containers and chose the same free port: whichever
    # the engine created first keeps it; the later one is removed and claims the next (50 at once bound the same
    # port twice, one instance restarting "Address already in use" until its release was rolled back).
    base = free_ports(3)
    client = FakeDockerClient()
    containers, create, chosen = client.containers, client.containers.create, []

    def create_beside_another(*args, **kwargs):
        chosen.append(int(kwargs["labels"]["io.deployflow.port"]))
        if len(chosen) == 1:  # the rival was created a moment before ours, on the same port
            claimed(client, "df-u-cart-prod-blue-0", chosen[0], "2026-12-06T17:33:55.65Z")
        made = create(*args, **kwargs)
        made.attrs["Created"] = "2026-12-06T17:33:55.6500001Z" if len(chosen) == 1 else "2026-12-06T17:33:56Z"
        return made

    containers.create = create_beside_another
    instance = DockerPlatform(client, stack="t", ports=(base, base + 2)).start(SPEC)
    assert len(chosen) == 2 and chosen[1] != chosen[0] and instance.port == chosen[1]
    assert client.calls_of("remove") == [("remove", "df-t-shop-prod-green-1", True)]  # our first claim, lost
    assert sorted(c.name for c in client.by_name.values()) == ["df-t-shop-prod-green-1", "df-u-cart-prod-blue-0"]


def test_the_earlier_claim_keeps_the_port_however_the_engine_wrote_the_times():
    from deployflow.platforms.docker_engine import created_at

    times = ["2026-12-06T17:33:55.6528Z", "2026-12-06T17:33:55.65288Z", "2026-12-06T17:33:55Z", "2026-12-06T17:33:55.652887983Z"]
    ordered = sorted(times, key=lambda t: created_at(type("C", (), {"attrs": {"Created": t}})()))
    assert ordered == ["2026-12-06T17:33:55Z", "2026-12-06T17:33:55.6528Z", "2026-12-06T17:33:55.65288Z",
                       "2026-12-06T17:33:55.652887983Z"]  # as text, .65288Z would sort after .652887983Z
