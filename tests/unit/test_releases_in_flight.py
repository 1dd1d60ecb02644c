"""The service page's live parts (releases_view/in_flight*.py, pipeline/mirror.py) through FastAPI's TestClient,
signed in as tests/unit/test_releases_view.py signs in, over its ledger and catalog (its fixtures): the releases
in flight (svc-0001's prod lock is held by a run), read from a fake of Airflow's progress, the deployer's release
record files in a state directory, and a real git mirror of a repository made here."""

# ruff: noqa: F811 - the fixtures of test_releases_view.py, imported, are the tests' arguments
from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deployflow.airflow.releases_view.app import releases_app
from deployflow.airflow.releases_view.in_flight import RunProgress, Share, Step, interval_of, split_of
from deployflow.airflow.releases_view.in_flight_reading import InFlightReaders
from deployflow.airflow.releases_view.release_records import SiteRecords
from deployflow.airflow.releases_view.view import Readers
from deployflow.catalog.watching import WatchedCatalog
from deployflow.ledger import Ledger, engine_for
from deployflow.outcomes import Outcome
from deployflow.pipeline.checkout import run_git
from deployflow.pipeline.mirror import (
    commits_between, fetch_command, init_command, keep_mirror, log_command, mirror_path,
)
from deployflow.platforms.base import StackSettings
from deployflow.record import Record, Target
from tests.unit.fakes import FakeRunProgress
from tests.unit.test_releases_view import A, B, HOLDER, NOW, airflow, catalog, entry, ledger, tokens  # noqa: F401 - fixtures

HOSTILE = "<img src=x onerror=alert(1)>"
AUTHOR = "Eve & Mallory"
VERDICT_1 = {"interval": 1, "start": 1000.0, "end": 1005.0, "result": "pass", "score": 100.0, "decision": "continue",
             "reasons": ["pass: score 100"], "metrics": {
                 "error_rate": {"label": "pass", "estimate": 0.0, "ci": [-0.01, 0.012], "ratio": None, "reason": "no more errors"},
                 "latency": {"label": "pass", "estimate": 0.0021, "ci": [-0.003, 0.004], "ratio": 1.01, "reason": HOSTILE}}}
VERDICT_2 = {"interval": 2, "result": "fail", "guard": "canary: 0 of 1 instance(s) running (and never restarted)"}
RECORD = Record(version="bbbbbbbbbbb2", image="127.0.0.1:5000/svc-0001:bbbbbbbbbbb2", colour="green", live="blue",
                previous=Target("bbbbbbbbbbb1", "127.0.0.1:5000/svc-0001:bbbbbbbbbbb1"), percent=20, baseline=True)


@pytest.fixture
def state_dir(tmp_path) -> Path:
    return tmp_path / "stack-state"


def write_record(state_dir: Path, service: str, environment: str, text: str) -> Path:
    path = state_dir / f"local-{service}-{environment}" / "release.json"  # platforms/docker.py's DockerSite.store
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def progress() -> FakeRunProgress:
    return FakeRunProgress({(f"release_{B}", HOLDER): RunProgress(
        steps=(Step("analysis", "deferred", "2026-12-06T11:58:00+00:00"), Step("load", "running", "2026-12-06T11:57:50+00:00")),
        verdicts=(VERDICT_2, VERDICT_1))})


@pytest.fixture
def client(tokens, catalog, ledger, airflow, progress, state_dir) -> TestClient:
    readers = Readers(catalog=WatchedCatalog(catalog).read, ledger=lambda: engine_for(ledger, reader=True),
                      airflow=airflow, clock=lambda: NOW)
    live = InFlightReaders(progress=progress, records=SiteRecords(lambda: StackSettings("local", state_dir)),
                           state_dir=lambda: state_dir)
    return TestClient(releases_app(readers, airflow_base="/airflow", live=live))


def test_the_in_flight_json_the_run_its_steps_its_split_and_each_interval_s_verdicts(client, tokens, state_dir, progress):
    write_record(state_dir, B, "prod", json.dumps(RECORD.to_dict()))
    answer = client.get(f"/api/services/{B}/in-flight", headers=tokens.header("v", "viewer")).json()
    assert set(answer) == {"service", "dag_id", "generated_at", "in_flight"} and answer["generated_at"] == NOW.isoformat()
    [prod] = answer["in_flight"]
    assert prod == {
        "environment": "prod", "run_id": HOLDER, "dag_id": f"release_{B}", "since": NOW.isoformat(), "state": "running",
        "approvals": [{"task_id": "approve_deploy", "since": "2026-12-06T11:52:00+00:00"}],
        "steps": [{"task_id": "analysis", "state": "deferred", "since": "2026-12-06T11:58:00+00:00"},
                  {"task_id": "load", "state": "running", "since": "2026-12-06T11:57:50+00:00"}],
        "split": {"under_way": True, "version": "bbbbbbbbbbb2", "note": None, "shares": [
            {"track": "canary", "colour": "green", "version": "bbbbbbbbbbb2", "percent": 20},
            {"track": "baseline", "colour": "baseline", "version": "bbbbbbbbbbb1", "percent": 20},
            {"track": "stable", "colour": "blue", "version": "bbbbbbbbbbb1", "percent": 60}]},
        "record_problem": None,
        "analysis": [
            {"interval": 1, "result": "pass", "decision": "continue", "final": False, "score": 100.0, "guard": None,
             "failure": None, "reasons": ["pass: score 100"], "metrics": [
                 {"metric": "error_rate", "label": "pass", "estimate": 0.0, "ci_low": -0.01, "ci_high": 0.012, "ratio": None,
                  "reason": "no more errors"},
                 {"metric": "latency", "label": "pass", "estimate": 0.0021, "ci_low": -0.003, "ci_high": 0.004, "ratio": 1.01,
                  "reason": HOSTILE}]},
            {"interval": 2, "result": "fail", "decision": None, "final": False, "score": None, "guard": VERDICT_2["guard"],
             "failure": None, "reasons": [], "metrics": []}],
        "watch": []}
    assert progress.asked[-1] == {(f"release_{B}", HOLDER)}  # the runs holding a lock, and only those


def test_the_post_promotion_watch_s_intervals_come_from_the_release_record(client, tokens, state_dir):
    watched = replace(RECORD, percent=100, baseline=False, watch=(
        {"interval": 1, "result": "nodata", "failure": None, "reasons": ["nodata (no request reached bbbbbbbbbbb2)"]},
        {**VERDICT_1, "interval": 2, "result": "fail", "failure": "9 of 10 requests answered 5xx (90.0%)"}))
    write_record(state_dir, B, "prod", json.dumps(watched.to_dict()))
    [prod] = client.get(f"/api/services/{B}/in-flight", headers=tokens.header("v", "viewer")).json()["in_flight"]
    assert [(i["interval"], i["result"], i["failure"], [m["metric"] for m in i["metrics"]]) for i in prod["watch"]] == [
        (1, "nodata", None, []), (2, "fail", "9 of 10 requests answered 5xx (90.0%)", ["error_rate", "latency"])]
    assert [(s["track"], s["percent"]) for s in prod["split"]["shares"]] == [("stable", 100), ("old", 0)]
    page = client.get(f"/services/{B}", headers=tokens.header("v", "viewer")).text
    assert "post-promotion interval 2: fail" in page and "nodata (no request reached bbbbbbbbbbb2)" in page
    assert page.count('data-kind="post-promotion" data-interval="2" data-metric') == 3  # the failure, two metrics
    finished = replace(watched, outcome="promoted")  # a finished record's watch is not in flight any more
    write_record(state_dir, B, "prod", json.dumps(finished.to_dict()))
    [prod] = client.get(f"/api/services/{B}/in-flight", headers=tokens.header("v", "viewer")).json()["in_flight"]
    assert prod["watch"] == [] and prod["split"]["under_way"] is False


def test_a_service_with_nothing_in_flight_asks_airflow_of_no_run(client, tokens, progress):
    answer = client.get(f"/api/services/{A}/in-flight", headers=tokens.header("v", "viewer")).json()
    assert answer["in_flight"] == [] and progress.asked[-1] == set()


@pytest.mark.parametrize("text, problem", [
    (None, "no release record yet"),
    ('{"version": "bbbbbbbbbbb2", "colour": "gr', "the release record cannot be read: "),  # a partial write
    ('{"version": "bbbbbbbbbbb2"}', "the release record is incomplete: "),
])
def test_a_missing_or_partial_release_record_is_said_and_the_rest_shows(client, tokens, state_dir, text, problem):
    if text is not None:
        write_record(state_dir, B, "prod", text)
    [prod] = client.get(f"/api/services/{B}/in-flight", headers=tokens.header("v", "viewer")).json()["in_flight"]
    assert prod["split"] is None and prod["record_problem"].startswith(problem)
    assert [s["task_id"] for s in prod["steps"]] == ["analysis", "load"] and len(prod["analysis"]) == 2


def test_the_in_flight_json_is_refused_to_a_user_without_a_role(client, tokens):
    assert client.get(f"/api/services/{B}/in-flight", headers=tokens.header("nobody", None)).status_code == 403
    assert client.get("/api/services/nope/in-flight", headers=tokens.header("v", "viewer")).status_code == 404


def test_the_page_draws_the_panel_escaped_and_refreshes_it_from_its_json(client, tokens, state_dir):
    write_record(state_dir, B, "prod", json.dumps(RECORD.to_dict()))
    page = client.get(f"/services/{B}", headers=tokens.header("v", "viewer")).text
    assert HOSTILE not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert f'data-testid="in-flight-prod" data-run-id="{HOLDER}"' in page
    assert f'href="/airflow/dags/release_{B}/runs/{HOLDER.replace(":", "%3A").replace("+", "%2B")}"' in page
    assert 'data-testid="share" data-track="canary" data-version="bbbbbbbbbbb2" data-percent="20"' in page
    assert page.count('data-testid="verdict-row"') == 3  # two metrics of interval 1, the guard of interval 2
    assert f'data-url="http://testserver/api/services/{B}/in-flight"' in page and 'data-refresh-ms="2000"' in page
    assert ".innerHTML" not in page  # the script draws text nodes only
    assert 'data-testid="nothing-in-flight"' in client.get(f"/services/{A}", headers=tokens.header("v", "viewer")).text


OLD, NEW = Target("bbbbbbbbbbb1", ""), "bbbbbbbbbbb2"


@pytest.mark.parametrize("record, shares, note", [
    (Record(NEW, "", "green", None, None, percent=100), [Share("new", "green", NEW, 100)], "a first deploy"),
    (Record(NEW, "", "green", "blue", OLD, percent=50), [Share("canary", "green", NEW, 50), Share("stable", "blue", OLD.version, 50)], None),
    (Record(NEW, "", "green", "blue", OLD, percent=100), [Share("stable", "green", NEW, 100), Share("old", "blue", OLD.version, 0)], None),
    (Record(NEW, "", "blue", "blue", OLD, percent=40), [Share("canary", "blue", NEW, 40), Share("stable", None, OLD.version, 60)],
     "replaced in place"),
    (Record(NEW, "", "green", "blue", OLD, percent=100, outcome="promoted"), [Share("stable", "green", NEW, 100)], "no release under way"),
    (Record(NEW, "", "green", "blue", OLD, percent=20, outcome="rolled back"), [Share("stable", "blue", OLD.version, 100)],
     "no release under way"),
])
def test_the_split_a_release_record_says(record, shares, note):
    split = split_of(record)
    assert list(split.shares) == shares and (split.note or "").startswith(note or "") and bool(split.note) is bool(note)
    assert sum(s.percent for s in split.shares) == 100 or split.shares == ()


def test_a_verdict_as_the_judge_writes_it_is_a_row_a_metric():
    from deployflow.analysis.comparison import IntervalReport

    classified = type("C", (), {"label": "high", "estimate": 0.25, "ci_low": 0.1, "ci_high": float("nan"), "ratio": 2.0,
                                "reason": "more errors"})()
    verdict = type("V", (), {"result": "fail", "score": 40.0, "reasons": ["fail: score 40"]})()
    report = IntervalReport(3, 1000.0, 1015.0, {"error_rate": classified}, verdict)
    shown = interval_of({**report.to_dict(), "decision": "fail"})
    assert shown == {"interval": 3, "result": "fail", "decision": "fail", "final": False, "score": 40.0, "guard": None,
                     "failure": None, "reasons": ["fail: score 40"], "metrics": [{"metric": "error_rate", "label": "high", "estimate": 0.25,
                                                                 "ci_low": 0.1, "ci_high": None, "ratio": 2.0,
                                                                 "reason": "more errors"}]}


# ---- the commits between two versions ------------------------------------------------------


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def origin(tmp_path) -> Path:
    """A repository of four commits on main, the last by an author whose name holds HTML's ampersand (git keeps
    no angle bracket in a name)."""
    path = tmp_path / "origin"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "t@example.invalid")
    for n, (author, subject) in enumerate([("ann", "one"), ("bob", "two"), ("cy", "three: fix <b>it</b>"), (AUTHOR, "four")]):
        (path / "app.txt").write_text(f"{n}\n")
        git(path, "add", ".")
        git(path, "-c", f"user.name={author}", "commit", "-qm", subject)
    return path


@pytest.fixture
def mirrored(origin, tmp_path, state_dir) -> list[str]:
    """``origin`` cloned as the checkout does and fetched into svc-0000's mirror; its commits, oldest first."""
    clone = tmp_path / "workspace" / "src"
    run_git(["git", "clone", "--quiet", "--no-checkout", "--", str(origin), str(clone)])
    assert keep_mirror(clone, mirror_path(state_dir, A), run=run_git) is None
    return git(origin, "log", "--reverse", "--format=%H").split()


def test_the_mirror_commands_are_exact():
    mirror, clone = Path("/state/git-mirrors/shop.git"), Path("/ws/shop/run/src")
    assert init_command(mirror) == ["git", "init", "--quiet", "--bare", "/state/git-mirrors/shop.git"]
    assert fetch_command(mirror, clone) == [
        "git", "--git-dir", "/state/git-mirrors/shop.git", "fetch", "--quiet", "--no-write-fetch-head", "--",
        "/ws/shop/run/src", "+refs/remotes/origin/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    assert log_command(mirror, "abc1234", "def5678", 11) == [
        "git", "--git-dir", "/state/git-mirrors/shop.git", "log", "--no-decorate", "--no-show-signature", "--max-count=11",
        "--format=%H\x1f%an\x1f%aI\x1f%s", "abc1234..def5678", "--"]


def test_the_commits_between_two_versions_from_the_mirror(mirrored, state_dir):
    changes = commits_between(mirror_path(state_dir, A), mirrored[0][:12], mirrored[3][:12])
    assert changes.problem is None and not changes.truncated
    assert [(c.sha, c.author, c.subject) for c in changes.commits] == [
        (mirrored[3], AUTHOR, "four"), (mirrored[2], "cy", "three: fix <b>it</b>"), (mirrored[1], "bob", "two")]
    assert len(commits_between(mirror_path(state_dir, A), mirrored[0], mirrored[3], limit=2).commits) == 2
    assert commits_between(mirror_path(state_dir, A), mirrored[0], mirrored[3], limit=2).truncated


@pytest.mark.parametrize("old, new, problem", [
    ("--output=/tmp/x", "abcdef1", "old: '--output=/tmp/x' is not a commit"),
    ("abcdef1", "main", "new: 'main' is not a commit"),
    ("abcdef1", "ABCDEF1", "new: 'ABCDEF1' is not a commit"),
    ("abcdef1", "abcdef2", "the mirror cannot list these commits: "),  # hex, but no such commit
])
def test_only_commits_the_mirror_holds_are_listed(mirrored, state_dir, old, new, problem):
    assert commits_between(mirror_path(state_dir, A), old, new).problem.startswith(problem)


def test_without_a_mirror_the_changes_say_so(state_dir):
    assert commits_between(mirror_path(state_dir, A), "abcdef1", "abcdef2").problem.startswith("no mirror of the service")


def test_the_changes_json_and_page_escaped_and_linked_from_the_history(client, tokens, mirrored, ledger):
    headers = tokens.header("v", "viewer")
    params = {"old": mirrored[1][:12], "new": mirrored[3][:12]}
    answer = client.get(f"/api/services/{A}/changes", params=params, headers=headers).json()
    assert [c["subject"] for c in answer["commits"]] == ["four", "three: fix <b>it</b>"] and answer["problem"] is None
    page = client.get(f"/services/{A}/changes", params=params, headers=headers).text
    assert "<b>it</b>" not in page and "three: fix &lt;b&gt;it&lt;/b&gt;" in page and "Eve &amp; Mallory" in page
    assert client.get(f"/api/services/{A}/changes", params=params, headers=tokens.header("nobody", None)).status_code == 403
    assert 'data-testid="changes-since-previous"' not in client.get(f"/services/{A}", headers=headers).text
    # A release that replaced another version links to the commits between them.
    written = Ledger(ledger)
    written.record(replace(entry(A, "dev", Outcome.PROMOTED, "aaaaaaaaaaa4", "2026-12-04T10:00:00+00:00"), previous="aaaaaaaaaaa2"))
    written.dispose()
    history = client.get(f"/services/{A}", headers=headers).text
    assert (f'href="http://testserver/services/{A}/changes?old=aaaaaaaaaaa2&amp;new=aaaaaaaaaaa4">changes since previous'
            in history)


def test_a_view_without_a_mirror_says_so(tokens, catalog, ledger, airflow):
    readers = Readers(catalog=WatchedCatalog(catalog).read, ledger=lambda: engine_for(ledger, reader=True),
                      airflow=airflow, clock=lambda: NOW)
    answer = TestClient(releases_app(readers)).get(f"/api/services/{A}/changes", params={"old": "abcdef1", "new": "abcdef2"},
                                                  headers=tokens.header("v", "viewer")).json()
    assert answer["problem"] == "this view reads no mirror of the repositories"


KUBERNETES_SHOP = {"name": "shop", "source": {"repo": "/srv/shop"}, "environments": {"prod": {
    "platform": "kubernetes", "port": 18000, "kubernetes": {"connection_id": "k8s", "namespace": "shop"}}}}


def test_a_cluster_that_does_not_answer_is_said_and_asked_once_at_a_time(state_dir):
    import threading

    from deployflow.catalog import parse_service
    from deployflow.platforms.base import Clients

    reached, answered, asked = threading.Event(), threading.Event(), []

    def hanging(connection_id: str) -> object:  # a Kubernetes API that never answers, then refuses
        asked.append(connection_id)
        reached.set()
        answered.wait(10)
        raise RuntimeError("connection refused")

    records = SiteRecords(lambda: StackSettings("local", state_dir), Clients(kubernetes=hanging), wait_s=0.2)
    service = parse_service(KUBERNETES_SHOP)
    first = records.read(service, "prod")
    assert reached.wait(30)
    second = records.read(service, "prod")
    assert first.problem == second.problem == "the release record is not reachable from here: no answer in 0.2 s"
    assert asked == ["k8s"]  # the second answer waited on the first read, it did not start another
    answered.set()
    records._reads[("shop", "prod")].result(timeout=5)
    assert records.read(service, "prod").problem == "the release record is not reachable from here: connection refused"


# ---- what is read of Airflow's metadata database ------------------------------------------


@pytest.fixture
def metadata(tmp_path):
    """Airflow's session bound to a SQLite file holding its task instances' and XComs' tables (nothing else)."""
    import sqlalchemy as sa
    from airflow import settings
    from airflow.models import import_all_models
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from sqlalchemy.orm import scoped_session, sessionmaker

    import_all_models()  # the tables' foreign keys name the others'
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'airflow.db'}")
    for table in (TaskInstance.__table__, XComModel.__table__):
        table.create(engine)
    before = settings.Session
    settings.Session = scoped_session(sessionmaker(bind=engine, expire_on_commit=False))
    try:
        yield engine
    finally:
        settings.Session.remove()
        settings.Session = before
        engine.dispose()


def test_the_runs_steps_and_verdicts_as_airflow_s_database_has_them(metadata):
    import uuid
    from datetime import datetime, timezone

    import sqlalchemy as sa
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel

    from deployflow.airflow.releases_view.run_progress import MetadataProgress

    dag, run, other = f"release_{B}", HOLDER, "manual__other"
    started = datetime(2026, 12, 6, 11, 58, tzinfo=timezone.utc)
    tasks = [("shift", "success"), ("analysis", "deferred"), ("load", "running"), ("promote", None)]
    with metadata.begin() as db:
        for n, (task_id, state) in enumerate(tasks):
            db.execute(sa.insert(TaskInstance.__table__).values(id=uuid.uuid4(), dag_id=dag, run_id=run, task_id=task_id,
                                                                map_index=-1, state=state, pool="default_pool",
                                                                start_date=started.replace(second=n)))
        db.execute(sa.insert(TaskInstance.__table__).values(id=uuid.uuid4(), dag_id=dag, run_id=other, task_id="build",
                                                            map_index=-1, state="running", pool="default_pool"))
        for key, value in (("verdict_002", VERDICT_2), ("verdict_001", VERDICT_1), ("verdict", VERDICT_2),
                           ("return_value", {"x": 1})):
            db.execute(sa.insert(XComModel.__table__).values(dag_run_id=1, dag_id=dag, run_id=run, task_id="analysis",
                                                             map_index=-1, key=key, value=json.dumps(value), timestamp=started))
    found = MetadataProgress().progress({(dag, run), (dag, "manual__nothing")})
    assert found[(dag, run)] == RunProgress(
        steps=(Step("analysis", "deferred", "2026-12-06T11:58:01+00:00"), Step("load", "running", "2026-12-06T11:58:02+00:00")),
        verdicts=(VERDICT_1, VERDICT_2))
    assert found[(dag, "manual__nothing")] == RunProgress() and (dag, other) not in found
    assert MetadataProgress().progress(set()) == {}
