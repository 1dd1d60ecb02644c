"""The release DAG's second half on the Docker platform, for real: HAProxy, containers, traffic.

A load generator sends 100 requests/s through the environment's proxy during
every release and counts each failed request. Each environment first gets a
live version (module fixture), so every test releases over a running one.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import NamedTuple

import pytest
import requests
from docker.errors import NotFound

from deployflow.analysis.loadgen import LoadGenerator, LoadReport, Sample
from deployflow.platforms.hardening import owner
from tests.e2e.harness import (
    DAG_ID, PORTS, STACK, all_tries_text, app_containers, branch, containers_created, finished, log_text, release,
    release_together, served_version, short_sha, versions,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def live(airflow, sample_repo):
    """main, released to every environment: the version each test replaces."""
    for environment, run in release_together(airflow, ["prod", "staging", "dev"], "main").items():
        assert run["state"] == "success", (environment, run["tasks"])
        assert served_version(environment) == short_sha(sample_repo, "main")
    return short_sha(sample_repo, "main")


@dataclass(frozen=True)
class AnsweredSample(Sample):
    answered: float = float("inf")  # wall-clock time the answer (or the error) was in


class AnsweredLoad(LoadGenerator):
    """The load generator, each sample stamped with when it was answered as well as when it was sent."""

    def _one(self, session: requests.Session) -> AnsweredSample:
        sample = super()._one(session)
        return AnsweredSample(**asdict(sample), answered=time.time())


def under_load(environment: str) -> AnsweredLoad:
    return AnsweredLoad(f"http://127.0.0.1:{PORTS[environment]}/", rate=100, threads=4)


def _within(report: LoadReport, since: float, until: float) -> list[AnsweredSample]:
    return [s for s in report.samples if not s.failed and s.at >= since and s.answered < until]


def answered_within(report: LoadReport, *, since: float, until: float) -> Counter:
    """Successful answers by version (short SHA) to the requests sent at or after ``since`` and answered before ``until``."""
    return Counter((s.version or "?")[:12] for s in _within(report, since, until))


def share_per_second(report: LoadReport, version: str, *, since: float, until: float) -> list[int]:
    """``version``'s share (%) of those answers, second by second: tells a step that was off from an edge."""
    seconds: dict[int, Counter] = {}
    for s in _within(report, since, until):
        seconds.setdefault(int(s.at - since), Counter())[(s.version or "?")[:12] == version] += 1
    return [round(100 * c[True] / c.total()) for _, c in sorted(seconds.items())]


def test_blue_green_switches_with_no_failed_request_and_removes_the_old_colour(airflow, docker_client, sample_repo, live):
    new = branch(sample_repo, "bg-2")
    with under_load("prod") as load:
        run = release(airflow, "prod", "bg-2")
    assert run["state"] == "success", run["tasks"]
    assert load.report.failures == [], load.report.summary()
    served = versions(load.report)
    assert served[live] > 0 and served[new] > 0, served  # traffic moved while we watched
    assert served_version("prod") == new
    remaining = app_containers(docker_client, "prod")
    assert sorted(c.labels["io.deployflow.version"] for c in remaining) == [new, new]
    assert re.search(f"promote: {new} is live in prod; (blue|green) of {live} removed", log_text(airflow, run["run_id"], "promote"))


def test_a_version_never_ready_gets_no_traffic_and_is_rolled_back(airflow, docker_client, sample_repo, live):
    before = served_version("prod")
    bad = short_sha(sample_repo, "ready-never")
    with under_load("prod") as load:
        run = release(airflow, "prod", "ready-never")
    assert run["state"] == "failed"
    assert run["tasks"]["health"] == "failed"
    assert run["tasks"]["rollback"] == "success"
    assert {run["tasks"][t] for t in ("shift", "promote")} == {"upstream_failed"}
    assert "HTTP 503" in log_text(airflow, run["run_id"], "health")  # the last answer, quoted
    assert load.report.failures == [], load.report.summary()
    assert bad not in versions(load.report), "the unready version received traffic"
    assert served_version("prod") == before
    assert {c.labels["io.deployflow.version"] for c in app_containers(docker_client, "prod")} == {before}
    assert f"rolled back to {before}" in log_text(airflow, run["run_id"], "record")


def deaths(docker_client, environment: str, version: str, *, since: float, until: float) -> list[float]:
    """When each instance of ``version`` in ``environment`` exited (Docker's ``die`` events), wall-clock seconds."""
    labels = [f"io.deployflow.stack={STACK}", f"io.deployflow.environment={environment}", f"io.deployflow.version={version}"]
    events = docker_client.events(since=int(since), until=int(until) + 1, decode=True,
                                  filters={"type": "container", "event": "die", "label": labels})
    return [event["timeNano"] / 1e9 for event in events]


def cut_by_a_death(sample: AnsweredSample, died: list[float]) -> bool:
    """A response the instance was writing when it died: its headers were out, its body never came.

    No proxy can retry such a request (the client already has the answer's
    first half). It was sent before a death and its error came around it:
    the 2 s are for dockerd, which logs the death once containerd tells it.
    """
    return sample.error == "ChunkedEncodingError" and any(
        sample.at <= d and d - 2 <= sample.answered <= d + 5 for d in died)


def test_a_version_that_crashes_after_start_is_rolled_back(airflow, docker_client, sample_repo, live):
    before = served_version("prod")
    bad = short_sha(sample_repo, "crash")
    started = time.time()
    with under_load("prod") as load:
        run = release(airflow, "prod", "crash")
    assert run["state"] == "failed"
    # It dies 10 s after it started: during the scale-down watch, or during the switch on a busy machine.
    # Whichever step watched it then put all traffic back on the old colour.
    failed = [step for step in ("shift", "promote") if run["tasks"][step] == "failed"]
    assert len(failed) == 1 and run["tasks"]["rollback"] == "success", run["tasks"]
    assert f"restored 100 % of traffic to {before}" in log_text(airflow, run["run_id"], failed[0])
    assert served_version("prod") == before
    assert {c.labels["io.deployflow.version"] for c in app_containers(docker_client, "prod")} == {before}
    # The old colour stood by as HAProxy backup servers: no request went to a dead instance. The crash
    # (os._exit, as a real one) can cut only the responses being written at that instant: one per load thread.
    died = deaths(docker_client, "prod", bad, since=started, until=time.time())
    assert died, "the crash version never died: the test did not test a crash"
    assert all(cut_by_a_death(s, died) for s in load.report.failures), (load.report.summary(), died)
    assert len(load.report.failures) <= load.threads * len(died), (load.report.summary(), died)


def test_a_version_that_dies_after_promotion_is_rolled_back_by_the_watch(airflow, docker_client, sample_repo, live):
    # dies-after-promotion: healthy until it answers 150 requests; blue-green gives it none before the switch,
    # so it passes health and the switch, then dies under all the traffic. Only the watch after promotion, with
    # the old colour standing by, is left to see it.
    before = served_version("prod")
    new = short_sha(sample_repo, "dies-after-promotion")
    started = time.time()
    with under_load("prod") as load:
        run = release(airflow, "prod", "dies-after-promotion")
    assert (run["state"], run["tasks"]["shift"], run["tasks"]["promote"], run["tasks"]["rollback"]) == (
        "failed", "success", "failed", "success"), run["tasks"]
    promote = log_text(airflow, run["run_id"], "promote")
    assert f"{new} failed its" in promote and "post-promotion watch" in promote and "traffic restored to" in promote, promote
    assert served_version("prod") == before
    assert {c.labels["io.deployflow.version"] for c in app_containers(docker_client, "prod")} == {before}
    assert versions(load.report)[new] > 0, "it took traffic before it died"
    # HAProxy retried what the dying instances dropped. As in the crash test above, the death (an exit once it has
    # answered 150 requests, other load threads' requests in flight) can cut only the responses being written at
    # that instant, one per load thread; a loaded machine makes that overlap likely (seen beside the other shard).
    died = deaths(docker_client, "prod", new, since=started, until=time.time())
    assert died, "the version never died: the test did not test a death after promotion"
    assert all(cut_by_a_death(s, died) for s in load.report.failures), (load.report.summary(), died)
    assert len(load.report.failures) <= load.threads * len(died), (load.report.summary(), died)
    rolled = airflow.xcom(DAG_ID, run["run_id"], "rollback")
    assert rolled["to"] == before and "post-promotion watch" in (rolled.get("because") or ""), rolled  # into the ledger



class StepLine(NamedTuple):
    at: float  # wall time of the line, logged as soon as the step's weights were set
    percent: int
    took: float  # seconds from the start of the step's work (scaling first) to the line, to 0.1 s


_STEP_LINE = re.compile(
    r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO shift: (\d+) % of traffic on [^\n]*?, (\d+\.\d) s to get there"
)


def step_times(log: str) -> list[StepLine]:
    """Each 'shift: N % of traffic ..., T s to get there' line the deployer logged."""
    found = []
    for match in _STEP_LINE.finditer(log):
        stamp = dt.datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").replace(tzinfo=dt.timezone.utc)
        found.append(StepLine(stamp.timestamp(), int(match.group(2)), float(match.group(3))))
    return found


def test_canary_steps_happen_in_order_and_the_split_matches_each(airflow, docker_client, stack_state, sample_repo, live):
    new = branch(sample_repo, "canary-2")
    with under_load("staging") as load, containers_created(docker_client) as created:
        run = release(airflow, "staging", "canary-2")
    assert run["state"] == "success", run["tasks"]
    assert_least_privilege({**created, **{c.id: c.attrs for c in proxy_and_apps(docker_client, "staging")}},
                           shared_state=owner(stack_state))
    assert load.report.failures == [], load.report.summary()
    assert run["tasks"]["analysis"] == "success"  # the first step was judged, then promote ramped on
    steps = step_times(log_text(airflow, run["run_id"], "shift") + log_text(airflow, run["run_id"], "promote"))
    assert [s.percent for s in steps] == [20, 50, 100]
    for step, following in zip(steps, steps[1:]):
        # Only the requests HAProxy routed while this step's weights stood: sent
        # after its line (logged once they were set; +1 ms, the line's
        # resolution) and answered before the next step's work began (its line
        # says how long that took; 0.05 s its rounding, 0.05 s to spare). A
        # request in flight across a change is in no step.
        since, until = step.at + 0.001, following.at - following.took - 0.1
        window = answered_within(load.report, since=since, until=until)
        total = sum(window.values())
        assert total, f"no request was sent and answered within the {step.percent} % step: {step}, {following}"
        share = 100 * window[new] / total
        sigma = 100 * (step.percent / 100 * (1 - step.percent / 100) / total) ** 0.5
        assert abs(share - step.percent) <= max(4 * sigma, 3), (
            step.percent, share, total, f"share per second: {share_per_second(load.report, new, since=since, until=until)}")
    assert served_version("staging") == new


def proxy_and_apps(docker_client, environment: str) -> list:
    return [c for c in docker_client.containers.list(all=True, filters={"label": f"io.deployflow.stack={STACK}"})
            if c.labels.get("io.deployflow.environment") == environment]


ROLES = {"app", "proxy", "deployer", "test", "load"}  # every kind of container a release with analysis starts


def assert_least_privilege(inspected: dict[str, dict], *, shared_state: str) -> None:
    """No capability, no new privileges, limits, an image by ID or digest, and a user that is not root (the deployer
    and the proxy: the owner of the state they share with Airflow, handed over to the deployer image's user where
    Airflow runs as root, as here)."""
    assert not [c for c in inspected.values() if c.get("missed")], "a container was gone before it could be inspected"
    assert {c["Config"]["Labels"].get("io.deployflow.role") for c in inspected.values()} == ROLES, inspected.keys()
    for c in inspected.values():
        role, host, config = c["Config"]["Labels"]["io.deployflow.role"], c["HostConfig"], c["Config"]
        where = f"{role} {c['Name']}"
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], where
        assert "no-new-privileges" in (host["SecurityOpt"] or []), where
        assert not host["Privileged"] and host["Memory"] > 0 and host["PidsLimit"] > 0, where
        assert config["Image"].startswith("sha256:") or "@sha256:" in config["Image"], (where, config["Image"])
        assert config["User"] not in ("", "0", "root") and not config["User"].startswith(("0:", "root:")), (
            where, config["User"])
        if role in ("deployer", "proxy"):
            assert config["User"] == shared_state, (where, config["User"])


def test_rolling_replaces_every_replica_checking_health_per_batch(airflow, docker_client, sample_repo, live):
    new = branch(sample_repo, "rolling-2")
    with under_load("dev") as load:
        run = release(airflow, "dev", "rolling-2")
    assert run["state"] == "success", run["tasks"]
    assert load.report.failures == [], load.report.summary()
    assert [s.percent for s in step_times(log_text(airflow, run["run_id"], "shift"))] == [33, 67, 100]
    # A rolling release has no canary to judge and dev asks for no approval: resolve skipped those through the
    # scheduler, and none of them started a process (try 0).
    needless = ("analysis", "load", "approve_deploy")
    assert {t: (run["tasks"][t], run["tries"][t]) for t in needless} == {t: ("skipped", 0) for t in needless}
    containers = app_containers(docker_client, "dev")
    assert sorted(c.labels["io.deployflow.version"] for c in containers) == [new] * 3
    assert served_version("dev") == new


def test_a_deploy_task_killed_mid_way_is_retried_and_converges(airflow, docker_client, sample_repo, live):
    new = branch(sample_repo, "killed-2")
    run_id = airflow.trigger(DAG_ID, {"environment": "prod", "git_ref": "killed-2"})["dag_run_id"]
    labels = [f"io.deployflow.stack={STACK}", "io.deployflow.role=deployer", "io.deployflow.step=promote"]  # this stack's
    deadline = time.monotonic() + 600
    killed = None
    while killed is None and time.monotonic() < deadline:
        for container in docker_client.containers.list(filters={"label": labels}):
            time.sleep(2)  # well into the scale-down watch
            try:
                container.kill()
                killed = container.name
            except NotFound:
                pass
        time.sleep(0.2)
    assert killed, "never saw the promote step's deployer running"
    run = finished(airflow, run_id)
    assert run["state"] == "success", run["tasks"]
    assert run["tries"]["promote"] == 2
    containers = app_containers(docker_client, "prod")
    assert sorted(c.labels["io.deployflow.version"] for c in containers) == [new, new]
    assert len({c.labels["io.deployflow.colour"] for c in containers}) == 1
    assert served_version("prod") == new


def test_a_second_trigger_never_runs_a_deployer_beside_the_first(airflow, airflow_home, docker_client, sample_repo, live):
    branch(sample_repo, "queue-a")
    branch(sample_repo, "queue-b")
    seen: list[int] = []
    stop = threading.Event()

    def count_deployers() -> None:
        while not stop.is_set():
            seen.append(len(docker_client.containers.list(  # this stack's: the other e2e shard's run beside it
                filters={"label": [f"io.deployflow.stack={STACK}", "io.deployflow.role=deployer"]})))
            time.sleep(0.1)

    watcher = threading.Thread(target=count_deployers, daemon=True)
    watcher.start()
    try:
        # queue-b is triggered first, so its tasks likely start first, but queue-a was asked for a minute before
        # (its run_after, as a schedule's slot gives one): queue-b's lock task likely runs before queue-a's has
        # asked for prod, the race of two triggers a moment apart (seen in CI) made the likely case.
        second = airflow.trigger(DAG_ID, {"environment": "prod", "git_ref": "queue-b"})["dag_run_id"]
        first = airflow.trigger(DAG_ID, {"environment": "prod", "git_ref": "queue-a"},
                                run_after=dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1))["dag_run_id"]
        a, b = finished(airflow, first), finished(airflow, second)
    finally:
        stop.set()
        watcher.join()
    assert a["state"] == b["state"] == "success"
    # queue-b waited in its resolve (which takes the lock) for queue-a to let go of prod (its record), then deployed: in the order
    # they were asked for, so queue-b's commit is what prod serves.
    tis = {run: {ti["task_id"]: ti for ti in airflow.task_instances(DAG_ID, run)} for run in (first, second)}
    assert tis[second]["resolve"]["end_date"] >= tis[first]["record"]["start_date"], (tis[first]["record"], tis[second]["resolve"])
    assert tis[second]["prepare"]["start_date"] >= tis[first]["record"]["start_date"]
    assert max(seen) == 1, "two deployers ran at once"
    assert served_version("prod") == short_sha(sample_repo, "queue-b")
    for run in (first, second):  # each resolve read the other run through the Task SDK
        assert "could not read the runs" not in all_tries_text(airflow_home, run, "resolve")
    # prod had no traffic (no load here, none of its own): its post-promotion watch judged nothing and says so, then
    # the e2e catalog's no-data policy 'pass' decides; never a pass score for what no request reached.
    watch = log_text(airflow, first, "promote")
    assert "score -: nodata (no request reached" in watch and "100/100" not in watch, watch
    assert "no-data policy 'pass': the watch goes on" in watch
    assert "interval(s) had data: judged on health and instances alone (no-data policy 'pass')" in watch
