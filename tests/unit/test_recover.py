"""recover's choices, from ledger contents: the last promoted release per environment, the digest over the tag,
its configuration or a refusal; and what the command does per service (no Docker: bring_back is faked here,
tests/e2e/test_recover.py runs it for real)."""

from __future__ import annotations

from pathlib import Path

import docker
import pytest

from deployflow.catalog import parse_service
from deployflow.configuration import ResolvedConfig
from deployflow.ledger import Ledger, ReleaseEntry
from deployflow.deployer import recover as recovering
from deployflow.pipeline.registry import RegistryCredentials
from deployflow.deployer.recover import Unrecoverable, check_config, choose, ensure_image, pinned_image, recover
from deployflow.platforms.base import StackSettings
from deployflow.platforms.config_files import ConfigFiles

DIGEST = "sha256:" + "d" * 64


def entry(run_id: str, version: str = "aaaaaaaaaaaa", *, environment: str = "prod", outcome: str = "promoted",
          config: str | None = None, digest: str | None = None, image: str | None = "", service: str = "shop") -> ReleaseEntry:
    return ReleaseEntry(service=service, environment=environment, strategy="blue-green", version=version, commit=None,
                        image=f"127.0.0.1:5000/shop:{version}" if image == "" else image, previous=None, requested_by="ci",
                        reason="", run_id=run_id, outcome=outcome, started_at=None,
                        finished_at=f"2026-12-01T10:00:{run_id[-1]}0+00:00", seconds=1.0, rollback_seconds=None,
                        config=config, digest=digest)


@pytest.mark.parametrize(("ledger", "expected"), [
    ([entry("r1")], ("r1", "aaaaaaaaaaaa", "127.0.0.1:5000/shop:aaaaaaaaaaaa")),
    # a later release rolled back, failed, was refused: the last promoted one still serves
    ([entry("r1"), entry("r2", "bbbbbbbbbbbb", outcome="rolled_back"),
      entry("r3", "cccccccccccc", outcome="failed"), entry("r4", None, outcome="refused", image=None)],
     ("r1", "aaaaaaaaaaaa", "127.0.0.1:5000/shop:aaaaaaaaaaaa")),
    ([entry("r1"), entry("r2", "bbbbbbbbbbbb")], ("r2", "bbbbbbbbbbbb", "127.0.0.1:5000/shop:bbbbbbbbbbbb")),
    # another environment's newer promotion is not this one's
    ([entry("r1"), entry("r2", "bbbbbbbbbbbb", environment="dev")], ("r1", "aaaaaaaaaaaa", "127.0.0.1:5000/shop:aaaaaaaaaaaa")),
    # the digest over the tag: exactly what ran, wherever the tag points now
    ([entry("r1", digest=DIGEST)], ("r1", "aaaaaaaaaaaa", f"127.0.0.1:5000/shop@{DIGEST}")),
    ([entry("r1", digest=DIGEST), entry("r2", "bbbbbbbbbbbb")], ("r2", "bbbbbbbbbbbb", "127.0.0.1:5000/shop:bbbbbbbbbbbb")),
    # with its configuration: the release version the engine runs carries it
    ([entry("r1", config="c0ffee00c0de", digest=DIGEST)], ("r1", "aaaaaaaaaaaa-cc0ffee00c0de", f"127.0.0.1:5000/shop@{DIGEST}")),
    ([entry("r1", outcome="rolled_back")], None),
    ([entry("r1", environment="dev")], None),
    ([], None),
])
def test_recover_chooses_the_last_promoted_release_of_the_environment(ledger, expected):
    chosen = choose("shop", "prod", ledger)
    assert (chosen and (chosen.entry.run_id, chosen.version, chosen.image)) == expected


@pytest.mark.parametrize(("image", "digest", "pinned"), [
    ("127.0.0.1:5000/shop:aaaaaaaaaaaa", DIGEST, f"127.0.0.1:5000/shop@{DIGEST}"),
    ("127.0.0.1:5000/shop", DIGEST, f"127.0.0.1:5000/shop@{DIGEST}"),  # the port is not a tag
    ("reg.example/team/shop:v1@sha256:" + "0" * 64, DIGEST, f"reg.example/team/shop@{DIGEST}"),
    ("shop:v1", DIGEST, f"shop@{DIGEST}"),
    ("127.0.0.1:5000/shop:aaaaaaaaaaaa", None, "127.0.0.1:5000/shop:aaaaaaaaaaaa"),
])
def test_the_image_is_pinned_to_its_digest(image, digest, pinned):
    assert pinned_image(image, digest) == pinned


def test_a_promoted_release_without_an_image_is_refused():
    with pytest.raises(Unrecoverable, match="its last promoted release \\(run r1\\) has no image in the ledger"):
        choose("shop", "prod", [entry("r1", image=None)])


def test_a_missing_configuration_is_refused_and_a_stored_one_is_taken(tmp_path):
    configs = ConfigFiles.of(tmp_path, stack="e2e", service="shop", environment="prod")
    chosen = choose("shop", "prod", [entry("r1", config="c0ffee00c0de")])
    with pytest.raises(Unrecoverable, match=r"configuration c0ffee00c0de of aaaaaaaaaaaa-cc0ffee00c0de is not in the configuration "
                                            r"store \(.*/config/e2e-shop-prod/c0ffee00c0de.json\); restore it from a backup"):
        check_config(chosen, configs)
    configs.save("c0ffee00c0de", ResolvedConfig(env={"GREETING": "hi"}))
    check_config(chosen, configs)
    check_config(choose("shop", "prod", [entry("r1")]), configs)  # no configuration: nothing to look for


SERVICES = [parse_service({"name": name, "source": {"repo": "/srv/x"}, "environments": {"prod": environment}})
            for name, environment in (("cart", {"platform": "kubernetes"}), ("shop", {"port": 18990}),
                                      ("till", {"port": 18991}), ("web", {"port": 18992}))]


def test_the_command_brings_back_what_it_can_and_says_why_not_for_the_rest(tmp_path, monkeypatch):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record(entry("r1", service="cart"))
    ledger.record(entry("r2", service="shop", digest=DIGEST))
    ledger.record(entry("r3", service="till", config="c0ffee00c0de"))  # its configuration was lost with the host
    brought: list[str] = []

    def bring_back(service, recovery, **_):
        brought.append(f"{service.name} {recovery.version} {recovery.image}")
        return {"already_live": False, "image": "pulled from the registry"}

    monkeypatch.setattr(recovering, "bring_back", bring_back)
    ticks = iter(range(100))
    outcomes = recover(SERVICES, "prod", ledger, settings=StackSettings("e2e", tmp_path), client_for=object,
                       clock=lambda: float(next(ticks)))
    assert brought == [f"shop aaaaaaaaaaaa 127.0.0.1:5000/shop@{DIGEST}"]  # till never started without its configuration
    assert [(o.service, o.ok) for o in outcomes] == [("cart", False), ("shop", True), ("till", False), ("web", True)]
    lines = [o.line for o in outcomes]
    assert lines[0].startswith("cart in prod: NOT brought back after 1.0 s: a kubernetes environment")
    assert lines[1] == (f"shop in prod: back on aaaaaaaaaaaa (127.0.0.1:5000/shop@{DIGEST}; promoted 2026-12-01T10:00:20+00:00, "
                        "run r2) in 1.0 s (healthy and serving; image pulled from the registry)")
    assert lines[2].startswith("till in prod: NOT brought back after 1.0 s: configuration c0ffee00c0de of aaaaaaaaaaaa-cc0ffee00c0de")
    assert lines[3] == "web in prod: nothing to bring back (no promoted release in the ledger)"


class FakeImages:
    def __init__(self, *, local: bool, pull_error: str | None = None) -> None:
        self.local, self.pull_error, self.pulled = local, pull_error, []

    def get(self, ref):
        if not self.local:
            raise docker.errors.ImageNotFound(f"No such image: {ref}")

    def pull(self, ref, auth_config=None):
        if self.pull_error:
            raise docker.errors.APIError(self.pull_error, explanation=self.pull_error)
        self.pulled.append((ref, auth_config))


class FakeClient:
    def __init__(self, images: FakeImages) -> None:
        self.images = images


@pytest.mark.parametrize(("images", "said", "pulled"), [
    (FakeImages(local=True), "on this host", []),
    (FakeImages(local=False), "pulled from the registry", [(f"127.0.0.1:5000/shop@{DIGEST}", None)]),
    (FakeImages(local=False, pull_error="manifest unknown"), "is not on this host and its registry did not give it: manifest unknown", []),
])
def test_the_image_is_pulled_by_digest_when_the_host_lost_it(images, said, pulled):
    ref = f"127.0.0.1:5000/shop@{DIGEST}"
    if said.startswith("is not"):
        with pytest.raises(Unrecoverable, match=said):
            ensure_image(FakeClient(images), ref)
    else:
        assert ensure_image(FakeClient(images), ref) == said
    assert images.pulled == pulled


def test_a_lost_image_is_pulled_with_the_registrys_credentials_and_no_other_registry_gets_them():
    images = FakeImages(local=False)
    credentials = RegistryCredentials("127.0.0.1:5000", "deployflow", "s3cret")
    ensure_image(FakeClient(images), f"127.0.0.1:5000/shop@{DIGEST}", credentials)
    ensure_image(FakeClient(images), f"registry.example.com/shop@{DIGEST}", credentials)
    assert images.pulled == [(f"127.0.0.1:5000/shop@{DIGEST}", {"username": "deployflow", "password": "s3cret"}),
                             (f"registry.example.com/shop@{DIGEST}", None)]


@pytest.mark.parametrize(("argv", "error"), [
    (["--environment", "qa"], "recover: --environment: 'qa' is not valid; valid values are dev, prod, staging"),
    (["--environment", "prod", "--service", "nope"], "recover: --service: 'nope' is not valid; valid values are sample-app"),
])
def test_bad_input_exits_2_naming_the_field_and_the_valid_values(argv, error, capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("DEPLOYFLOW_CATALOG", raising=False)  # the shipped catalog
    assert recovering.main([*argv, "--state", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == error


def test_an_empty_ledger_fails_and_says_to_restore_it_first(capsys, tmp_path):
    assert recovering.main(["--environment", "dev", "--state", str(tmp_path)]) == 1
    assert "has no promoted release there; restore it first" in capsys.readouterr().err


@pytest.mark.parametrize(("failing", "running", "error"), [
    (False, {"aaaaaaaaaaaa": 3}, None),
    # never healthy: rolled back to nothing, and it says why
    (True, {}, r"aaaaaaaaaaaa is not healthy after .* HTTP 503"),
])
def test_bring_back_is_a_first_deploy_through_the_engine_health_checked(failing, running, error):
    from tests.unit.world import World

    world = World("rolling", platform="docker", replicas=3, batch_size=1)
    recovery = choose("shop", "prod", [entry("r1", digest=DIGEST)])
    if failing:
        world.platform.failing.add(recovery.version)
    back = dict(client=FakeClient(FakeImages(local=True)), rollout=world.rollout(recovery.version), session=world.session, sleep=world.clock.sleep,
                clock=world.clock.monotonic)
    if error:
        with pytest.raises(Unrecoverable, match=error):
            recovering.bring_back(world.service, recovery, **back)
    else:
        assert recovering.bring_back(world.service, recovery, **back) == {"already_live": False, "image": "on this host"}
    live = [i for i in world.platform.by_name.values() if i.running]
    assert {v: sum(1 for i in live if i.version == v) for v in {i.version for i in live}} == running
    # again on a host that serves it: nothing to do
    if not failing:
        back["rollout"] = world.rollout(recovery.version)
        assert recovering.bring_back(world.service, recovery, **back)["already_live"] is True


@pytest.mark.parametrize(("docker_host", "brought", "left"), [
    (None, ["shop"], {"remote": "remote in prod: not this host's: it runs on docker_host 'df_two'; run recover there "
                                "with --docker-host df_two"}),
    ("df_two", ["remote"], {"shop": "shop in prod: not this host's: it runs on the local engine (no docker_host); run "
                                    "recover there"}),
])
def test_recover_brings_back_only_the_services_of_the_docker_host_it_runs_on(tmp_path, monkeypatch, docker_host, brought, left):
    services = [parse_service({"name": name, "source": {"repo": "/srv/x"}, "environments": {"prod": {"port": port, **extra}}})
                for name, port, extra in (("remote", 18201, {"docker_host": "df_two"}), ("shop", 18202, {}))]
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.record(entry("r1", service="remote"))
    ledger.record(entry("r2", service="shop"))
    done: list[str] = []
    monkeypatch.setattr(recovering, "bring_back", lambda service, recovery, **_: done.append(service.name) or
                        {"already_live": False, "image": "on this host"})
    outcomes = recover(services, "prod", ledger, settings=StackSettings("e2e", tmp_path), client_for=object,
                       docker_host=docker_host)
    assert done == brought
    assert all(o.ok for o in outcomes)
    assert {o.service: o.line for o in outcomes if o.service not in brought} == left


@pytest.mark.parametrize("given", [None, "relative-state"])
def test_recover_works_from_any_working_directory(given, tmp_path, monkeypatch):
    """Its state is absolute before anything reads it: the default is the checkout's .state (Airflow's), a relative
    --state is from where it runs; the proxy's container mounts it by that path."""
    shipped = Path(__file__).resolve().parents[2] / "include" / "services"
    monkeypatch.delenv("DEPLOYFLOW_STATE", raising=False)
    monkeypatch.setenv("DEPLOYFLOW_CATALOG", str(shipped))
    monkeypatch.setenv("DEPLOYFLOW_HOME", str(tmp_path / "checkout"))
    monkeypatch.chdir(tmp_path)
    seen = []

    class Stop(Exception):
        pass

    def ledger(url):
        seen.append(url)
        raise Stop

    monkeypatch.setattr(recovering, "Ledger", ledger)
    with pytest.raises(Stop):
        recovering.main(["--environment", "dev", *(["--state", given] if given else [])])
    expected = tmp_path / given if given else tmp_path / "checkout" / ".state"
    assert seen == [f"sqlite:///{expected}/ledger.db"]
