"""The post-promotion watch (rollout/watch.py), on both platforms, for blue-green and canary: all traffic on
the new version while the old one stands by; health, instances and a judge every interval; a failure puts
all traffic back on the old version inside promote, and rollback then reports why.

The judge is a scripted one: what it says at each interval (tests/unit/test_analysis_versions.py tests the
real one, VersionComparison, on Prometheus answers).
"""

from __future__ import annotations

import json
import logging

import pytest

from deployflow.metrics.base import MetricsError
from deployflow.record import StepFailed
from deployflow.rollout.watch import Judgement
from tests.unit.world import FULL, World

PLATFORMS = {"docker": ("docker", "gateway"), "kubernetes": ("kubernetes", "gateway"),
             "kubernetes-replicas": ("kubernetes", "replicas")}
WATCH = {"enabled": True, "duration_s": 20, "interval_s": 5}


def cases():
    return [pytest.param(strategy, flavour, id=f"{strategy}-{flavour}") for strategy in ("blue-green", "canary")
            for flavour in PLATFORMS if flavour != "kubernetes-replicas" or strategy == "canary"]


class ScriptedJudge:
    """Says at each interval what ``script`` returns for it (a failure reason, None, a whole Judgement, or an
    exception to raise), after ``during`` has looked at the world; records the versions it was made for and the intervals judged."""

    def __init__(self, world: World, script=lambda number: None, during=lambda number: None) -> None:
        self.world, self.script, self.during = world, script, during
        self.made: list[tuple[str, str]] = []
        self.judged: list[int] = []
        self.began = 0
        world.judges = self.make

    def make(self, old: str, new: str) -> ScriptedJudge:
        self.made.append((old, new))
        return self

    def begin(self) -> None:
        self.began += 1

    def judge(self, number: int) -> Judgement:
        self.judged.append(number)
        self.during(number)
        said = self.script(number)
        if isinstance(said, BaseException):
            raise said
        return said if isinstance(said, Judgement) else Judgement(said, f"table {number}")


def released(strategy: str, flavour: str, watch=WATCH, **kwargs) -> World:
    platform, traffic = PLATFORMS[flavour]
    w = World(strategy, platform=platform, traffic=traffic, post_promotion=watch, **kwargs)
    w.release("v1", *FULL)
    return w


def to_full_traffic(w: World) -> None:
    w.release("v2", "prepare", "shift")


@pytest.mark.parametrize("strategy,flavour", cases())
def test_the_old_version_stands_by_through_the_watch_then_goes(strategy, flavour):
    w = released(strategy, flavour)
    seen = []
    judge = ScriptedJudge(w, during=lambda n: seen.append((w.shares(), w.running())))
    to_full_traffic(w)
    w.release("v2", "promote")
    assert judge.made == [("v1", "v2")] and judge.began == 1
    assert judge.judged == [1, 2, 3, 4]  # 20 s judged every 5 s
    # All traffic on v2, the old version's instances still there: every one (the replica-ratio router keeps the
    # one pod its last split left, since pods are its shares: a restore scales it back up).
    standby = 1 if flavour == "kubernetes-replicas" else 3
    assert seen == [({"v2": 100}, {"v1": standby, "v2": 3})] * 4
    assert (w.shares(), w.running()) == ({"v2": 100}, {"v2": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_version_that_dies_during_the_watch_is_rolled_back(strategy, flavour):
    w = released(strategy, flavour)
    ScriptedJudge(w, during=lambda n: w.crash("v2") if n == 1 else None)  # seen by the next check
    to_full_traffic(w)
    at = w.clock.now
    with pytest.raises(StepFailed, match="v2 failed its post-promotion watch at interval 2: only 0 of 3") as failed:
        w.release("v2", "promote")
    assert w.clock.now - at < 5 + 1.5  # the first instance check after the crash (every second), not the interval's end
    assert "traffic restored to v1 in" in str(failed.value)
    # Inside promote, before rollback runs: all traffic is back on v1, which never stopped.
    assert w.shares() == {"v1": 100} and w.running()["v1"] == 3  # (restore scales the old version to full size)
    rolled = w.release("v2", "rollback")
    assert rolled["rolled_back"] and rolled["to"] == "v1"
    assert (w.shares(), w.running()) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("strategy,flavour", cases())
def test_a_version_the_judge_fails_is_rolled_back_with_the_reason(strategy, flavour):
    w = released(strategy, flavour)
    ScriptedJudge(w, script=lambda n: "latency high: p99 0.9 s vs 0.02 s" if n == 3 else None)
    to_full_traffic(w)
    rollout = w.rollout("v2")
    with pytest.raises(StepFailed) as failed:
        rollout.promote()
    assert "interval 3: latency high: p99 0.9 s vs 0.02 s; traffic restored to v1" in str(failed.value)
    assert w.shares() == {"v1": 100}
    rollout.note_failure(str(failed.value))  # what the deployer CLI does when a step fails
    rolled = w.release("v2", "rollback")
    assert rolled["because"] == str(failed.value)
    assert (w.shares(), w.running()) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize("flavour", ["docker", "kubernetes"])
def test_a_new_version_that_fails_its_health_checks_during_the_watch_is_rolled_back(flavour):
    w = released("blue-green", flavour)
    ScriptedJudge(w, during=lambda n: w.fail_health("v2") if n == 1 else None)
    to_full_traffic(w)
    with pytest.raises(StepFailed, match="failed its health checks during the post-promotion watch \\(interval 2\\)"):
        w.release("v2", "promote")
    assert w.shares() == {"v1": 100}


def test_metrics_that_cannot_be_read_once_are_survived_three_times_in_a_row_fail():
    w = released("blue-green", "docker")
    ScriptedJudge(w, script=lambda n: MetricsError("Prometheus did not answer") if n == 2 else None)
    to_full_traffic(w)
    w.release("v2", "promote")
    assert w.shares() == {"v2": 100}

    w.release("v3", "prepare", "shift")
    ScriptedJudge(w, script=lambda n: MetricsError("Prometheus did not answer") if n >= 2 else None)
    with pytest.raises(StepFailed, match="interval 4: metrics not read 3 times in a row: Prometheus did not answer"):
        w.release("v3", "promote")
    assert w.shares() == {"v2": 100}


def test_the_watch_counts_towards_the_scale_down_delay():
    w = released("blue-green", "docker", scale_down_delay_s=30)
    ScriptedJudge(w)
    to_full_traffic(w)
    before = w.clock.now
    w.release("v2", "promote")
    took = w.clock.now - before
    assert 30 <= took < 32, took  # the 20 s watch, then the 10 s left of the delay: not 50 s


@pytest.mark.parametrize(("how", "why"), [
    ("off", "post_promotion is off in prod"),
    ("first deploy", "a first deploy: no old version to go back to"),
    ("rolling keeps no old instances", "no instance of v1 stands by to go back to (the release replaced it in place)"),
])
def test_no_watch_where_it_is_off_or_nothing_stands_by_and_promote_says_why(how, why, caplog):
    strategy = "rolling" if how.startswith("rolling") else "blue-green"
    w = World(strategy, platform="docker", post_promotion={"enabled": how != "off", "duration_s": 20, "interval_s": 5})
    judge = ScriptedJudge(w)
    promoted = w.release("v1", *FULL)
    if how != "first deploy":
        with caplog.at_level(logging.INFO, logger="deployflow.deployer"):
            promoted = w.release("v2", *FULL)
    assert judge.made == [] and w.shares() == {("v1" if how == "first deploy" else "v2"): 100}
    assert promoted["watch"] == {"skipped": why}
    if how != "first deploy":
        assert f"promote: no post-promotion watch: {why}" in caplog.text


def test_promote_says_how_long_it_watched():
    w = released("blue-green", "docker")
    ScriptedJudge(w)
    to_full_traffic(w)
    assert w.release("v2", "promote")["watch"] == {"seconds": 20.0}


def test_the_deployer_cli_notes_why_promote_failed_and_rollback_reports_it(monkeypatch, capsys):
    from deployflow.deployer import __main__ as cli

    w = released("blue-green", "docker")
    ScriptedJudge(w, script=lambda n: "error_rate high: 30 % of requests 5xx vs 0 %" if n == 1 else None)
    to_full_traffic(w)
    monkeypatch.setattr(cli, "_service", lambda path: w.service)
    monkeypatch.setattr(cli, "deployer_clients", lambda: None)
    monkeypatch.setattr(cli, "rollout_for", lambda *args, version, **kwargs: w.rollout(version))
    argv = ["--service-file", "shop.yaml", "--environment", "prod", "--version", "v2", "--image", "x"]

    assert cli.main(["promote", *argv]) == 1
    assert cli.main(["rollback", *argv]) == 0
    rolled = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert rolled["to"] == "v1" and rolled["because"].startswith("v2 failed its post-promotion watch at interval 1: "
                                                                 "error_rate high: 30 % of requests 5xx vs 0 %")
    assert (w.shares(), w.running()) == ({"v1": 100}, {"v1": 3})


# --- no verdict without data: the watch's no_data policy decides --------------------------------------

SILENCE = "nodata (no request reached v2 in the window judged)"
QUIET = Judgement(None, f"score -: {SILENCE}", SILENCE)  # what VersionComparison says of a quiet interval


@pytest.mark.parametrize("policy", ["fail", "hold", None])  # None: the catalog's default
def test_a_watch_with_no_data_never_promotes_unless_its_policy_says_pass(policy, caplog):
    watch = {**WATCH, "no_data": policy} if policy else WATCH
    w = released("blue-green", "docker", watch=watch)
    judge = ScriptedJudge(w, script=lambda n: QUIET, during=lambda n: seen.append(w.running()))
    seen: list = []
    to_full_traffic(w)
    with pytest.raises(StepFailed) as failed, caplog.at_level(logging.INFO, logger="deployflow.deployer"):
        w.release("v2", "promote")
    if policy == "fail":  # at the first quiet interval
        assert judge.judged == [1]
        assert f"v2 failed its post-promotion watch at interval 1: {SILENCE}; no-data policy 'fail'" in str(failed.value)
    else:  # hold: the whole watch with v1 standing by, then back to it
        assert judge.judged == [1, 2, 3, 4] and seen == [{"v1": 3, "v2": 3}] * 4
        assert ("v2 failed its post-promotion watch: 0 of 4 interval(s) had data, nothing was judged; no-data policy "
                "'hold' goes back to v1 rather than promote on silence") in str(failed.value)
        assert f"post-promotion interval 1: {SILENCE}; no-data policy 'hold': the watch goes on" in caplog.text
    assert "traffic restored to v1" in str(failed.value)
    assert w.shares() == {"v1": 100}
    rolled = w.release("v2", "rollback")
    assert rolled["to"] == "v1" and (w.shares(), w.running()) == ({"v1": 100}, {"v1": 3})


@pytest.mark.parametrize(
    ("policy", "quiet", "summary"),
    [
        ("pass", {1, 2, 3, 4}, "0 of 4 interval(s) had data: judged on health and instances alone (no-data policy 'pass')"),
        ("hold", {1, 2}, "2 of 4 interval(s) had data"),  # the data came: judged, and passed
        ("pass", {1}, "3 of 4 interval(s) had data"),
    ],
)
def test_the_watch_says_how_many_intervals_had_data(policy, quiet, summary, caplog):
    w = released("blue-green", "docker", watch={**WATCH, "no_data": policy})
    ScriptedJudge(w, script=lambda n: QUIET if n in quiet else None)
    to_full_traffic(w)
    with caplog.at_level(logging.INFO, logger="deployflow.deployer"):
        w.release("v2", "promote")
    assert w.shares() == {"v2": 100}
    assert f"post-promotion watch: v2 passed 4 interval(s) in 20.0 s; {summary}" in caplog.text


def test_a_prod_with_no_traffic_is_judged_nodata_by_the_real_judge_and_held(caplog):
    # Prometheus as it answers for a version no request reached: its series, every increase 0.
    from deployflow.analysis.comparison import VersionComparison
    from tests.unit.test_metrics import VersionsProvider, buckets, codes

    w = released("blue-green", "docker")
    idle = {"errors": codes(0, 0), "latency": buckets(0, 0)}
    provider = VersionsProvider({"v1": {"errors": codes(4000, 4), "latency": buckets(4000, 4)}, "v2": idle})
    w.judges = lambda old, new: VersionComparison(provider, service="shop", environment="prod", config=w.env.analysis,
                                                  watch=w.env.post_promotion, old=old, new=new, clock=w.clock.monotonic)
    to_full_traffic(w)
    with pytest.raises(StepFailed, match="0 of 4 interval\\(s\\) had data"), \
            caplog.at_level(logging.INFO, logger="deployflow.deployer"):
        w.release("v2", "promote")
    assert caplog.text.count(f"score -: {SILENCE}") == 4 and "100/100" not in caplog.text
    assert w.shares() == {"v1": 100}


@pytest.mark.parametrize("strategy,flavour", cases())
def test_each_interval_s_verdict_is_kept_in_the_release_record_as_the_watch_goes(strategy, flavour):
    w = released(strategy, flavour)
    table = {"interval": 2, "result": "pass", "score": 100.0, "reasons": ["pass: score 100"],
             "metrics": {"latency": {"label": "pass", "estimate": 0.001, "ci": [-0.002, 0.003], "ratio": 1.0, "reason": "same"}}}
    kept = []
    said = {1: QUIET, 2: Judgement(None, "table 2", verdict=table), 3: MetricsError("prometheus: connection refused")}
    ScriptedJudge(w, script=lambda n: said.get(n), during=lambda n: kept.append(w.site().store().load().watch))
    to_full_traffic(w)
    w.release("v2", "promote")
    assert [len(found) for found in kept] == [0, 1, 2, 3]  # each interval in the record before the next is judged
    assert list(kept[-1]) == [
        {"interval": 1, "result": "nodata", "failure": None, "reasons": [SILENCE]},
        {**table, "interval": 2, "failure": None},
        {"interval": 3, "result": "unread", "failure": None, "reasons": ["metrics not read: prometheus: connection refused"]},
    ]
