"""``python -m deployflow.deployer status``: a table for a person by default, the JSON line every step prints with
``--json`` (what Airflow's status task passes and parses), the result file JSON either way, and an error one line
on stderr with the exit code it always had."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from deployflow.deployer import __main__ as cli
from deployflow.deployer.status_text import status_text
from deployflow.errors import ConfigError
from deployflow.record import StepFailed
from tests.unit.world import World

ARGV = ["status", "--service-file", "shop.yaml", "--environment", "prod"]
LONG = "v2-" + "0123456789abcdef" * 3  # a version as long as a build's full name


def wired(monkeypatch, world: World, rollout=None) -> None:
    """The CLI over the world's site (as test_post_promotion's deployer test wires it)."""
    monkeypatch.setattr(cli, "_service", lambda path: world.service)
    monkeypatch.setattr(cli, "deployer_clients", lambda: None)
    monkeypatch.setattr(cli, "rollout_for", lambda *a, version, **k: rollout or world.rollout(version or "probe"))


def canary_at_ten(platform: str, version: str = "v2") -> World:
    world = World("canary", platform=platform)
    world.release("v1")
    world.release(version, "prepare", "shift")
    return world


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([*ARGV, *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_on_docker_is_the_environment_its_sets_their_instances_and_the_servers(monkeypatch, capsys):
    wired(monkeypatch, canary_at_ten("docker"))
    code, out, _ = run(capsys)
    assert code == 0
    assert out.splitlines() == [
        "service:     shop",
        "environment: prod",
        "live:        blue",
        "",
        "SET       TRAFFIC  VERSIONS  IMAGES  CONFIGS",
        "blue         80 %  v1        v1      -",
        "green        10 %  v2        v2      -",
        "baseline     10 %  v1        v1      -",
        "",
        "SET       INSTANCE    URL                     RUNNING",
        "blue      blue-0      http://127.0.0.1:20000  yes",
        "blue      blue-1      http://127.0.0.1:20001  yes",
        "blue      blue-2      http://127.0.0.1:20002  yes",
        "green     green-0     http://127.0.0.1:20003  yes",
        "baseline  baseline-0  http://127.0.0.1:20004  yes",
        "",
        "SERVER      WEIGHT  CHECK",
        "baseline-0      20  unknown",
        "blue-0          53  unknown",
        "blue-1          53  unknown",
        "blue-2          53  unknown",
        "green-0         20  unknown",
    ]


def test_status_on_kubernetes_shows_the_replicas_and_the_route_weights(monkeypatch, capsys):
    wired(monkeypatch, canary_at_ten("kubernetes"))
    code, out, _ = run(capsys)
    assert code == 0
    assert out.splitlines() == [
        "service:              shop",
        "environment:          prod",
        "live:                 blue",
        "main service selects: blue",
        "route weights:        shop 80, shop-canary 10, shop-baseline 10",
        "",
        "SET       TRAFFIC  VERSIONS  IMAGES  CONFIGS  REPLICAS  READY",
        "blue         80 %  v1        v1      -               3      3",
        "green        10 %  v2        v2      -               1      1",
        "baseline     10 %  v1        v1      -               1      1",
    ]


def test_a_long_version_widens_its_column_and_the_next_columns_stay_in_line(monkeypatch, capsys):
    wired(monkeypatch, canary_at_ten("kubernetes", LONG))
    lines = run(capsys)[1].splitlines()
    header = lines.index("") + 1
    table = lines[header:header + 4]
    images = table[0].index("IMAGES")
    assert images == table[0].index("VERSIONS") + len(LONG) + 2
    assert [line[images - 2:].split(maxsplit=1)[0] for line in table[1:]] == ["v1", LONG, "v1"]  # starts in line
    assert {len(line) for line in table} == {len(table[0])}  # READY, a number, aligned right


def test_an_environment_with_nothing_released_says_so_in_one_line(monkeypatch, capsys):
    wired(monkeypatch, World("canary", platform="docker"))
    code, out, _ = run(capsys)
    assert code == 0 and out.splitlines()[-2:] == ["", "No sets in prod: nothing released there yet"]
    assert "live:        none (no set takes traffic)" in out.splitlines()


@pytest.mark.parametrize("platform", ["docker", "kubernetes"])
def test_json_is_the_line_status_always_printed(monkeypatch, capsys, platform):
    world = canary_at_ten(platform)
    wired(monkeypatch, world)
    code, out, _ = run(capsys, "--json")
    today = json.dumps({"step": "status", "ok": True, **world.rollout("probe").status()})  # what main() printed before
    assert code == 0 and out == today + "\n"
    assert json.loads(out)["sets"]["green"]["traffic_percent"] == 10


@pytest.mark.parametrize("argv", [(), ("--json",)])
def test_the_result_file_is_json_whatever_stdout_shows(monkeypatch, capsys, tmp_path, argv):
    world = canary_at_ten("docker")
    wired(monkeypatch, world)
    assert run(capsys, "--result-file", str(tmp_path / "xcom" / "return.json"), *argv)[0] == 0
    assert json.loads((tmp_path / "xcom" / "return.json").read_text()) == {
        "step": "status", "ok": True, **world.rollout("probe").status()}


def errors(caplog) -> list[str]:
    """The error lines logged (to stderr, outside pytest's log capture)."""
    return [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]


def test_bad_input_is_one_line_on_stderr_and_exit_2(monkeypatch, capsys, caplog):
    def unreadable(path):
        raise ConfigError("--service-file", "shop.yaml is not there")

    monkeypatch.setattr(cli, "_service", unreadable)
    code, out, _ = run(capsys)
    assert (code, out, errors(caplog)) == (2, "", ["--service-file: shop.yaml is not there"])


@pytest.mark.parametrize(("argv", "printed"), [
    ((), ""),  # a person: the error on stderr is the whole story
    (("--json",), '{"step": "status", "ok": false, "error": "the router did not answer"}\n'),  # as before
])
def test_a_failed_status_is_exit_1_with_its_json_line_only_when_asked(monkeypatch, capsys, caplog, argv, printed):
    def failing():
        raise StepFailed("the router did not answer")

    wired(monkeypatch, World("canary", platform="docker"), SimpleNamespace(status=failing))
    code, out, _ = run(capsys, *argv)
    assert (code, out, errors(caplog)) == (1, printed, ["status failed: the router did not answer"])


def test_a_set_with_no_instance_left_and_a_router_with_no_server_leave_no_empty_column_or_table():
    found = {"service": "shop", "environment": "prod", "live": "blue", "router": {"servers": {}}, "sets": {
        "blue": {"versions": ["v1"], "images": ["v1"], "configs": ["c1"], "traffic_percent": 100,
                 "instances": [{"name": "blue-0\x1b[2J", "url": "http://127.0.0.1:20000", "running": False}]},
        "green": {"versions": [], "images": [], "configs": [], "traffic_percent": 0, "instances": []}}}
    assert status_text(found).splitlines() == [
        "service:     shop",
        "environment: prod",
        "live:        blue",
        "",
        "SET    TRAFFIC  VERSIONS  IMAGES  CONFIGS",
        "blue     100 %  v1        v1      c1",
        "green      0 %  -         -       -",
        "",
        "SET   INSTANCE  URL                     RUNNING",
        "blue  blue-0    http://127.0.0.1:20000  no",
    ]


@pytest.mark.parametrize("step", ["status", "prepare"])
def test_a_service_file_that_is_not_there_is_one_line_and_exit_2(caplog, tmp_path, step):
    """It was a FileNotFoundError traceback and exit 4 (crashed, so retried)."""
    missing = tmp_path / "shop.yaml"
    code = cli.main([step, "--service-file", str(missing), "--environment", "dev", "--version", "v1", "--image", "i"])
    assert (code, errors(caplog)) == (2, [f"--service-file: {missing} is not a file (the service's catalog file)"])
