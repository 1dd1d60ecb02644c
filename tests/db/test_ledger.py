"""The ledger in SQL, against SQLite and a real PostgreSQL server: one row per run whatever the retries,
writers at once, the versioned schema, the one-time import of a JSON-lines ledger."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest
import sqlalchemy as sa

from deployflow.ledger import Ledger, ReleaseEntry, engine_for
from deployflow.ledger.schema import VERSION, current_version, migrate, schema_version
from deployflow.outcomes import Outcome


@pytest.fixture(params=["sqlite", "postgres"])
def url(request) -> str:
    return request.getfixturevalue(f"{request.param}_url")


def entry(run_id: str, *, environment: str = "prod", outcome: str = "promoted", finished: str = "2026-12-01T10:00:00+00:00",
          **more) -> ReleaseEntry:
    return ReleaseEntry(service="shop", environment=environment, strategy="blue-green", version="0123456789ab", commit="0123456789ab" * 3,
                        image="reg/shop:0123456789ab", previous=None, requested_by="alice", reason="", run_id=run_id,
                        outcome=outcome, started_at="2026-12-01T09:58:00+00:00", finished_at=finished, seconds=120.0,
                        rollback_seconds=None, **more)


def test_a_retried_record_updates_its_row_and_never_writes_a_second(url):
    ledger = Ledger(url)
    assert ledger.record(entry("r1", outcome="failed")) is True
    assert ledger.record(entry("r1", outcome="rolled_back", steps={"prepare": 3.25})) is False  # the retry
    [only] = ledger.entries()
    assert (only.run_id, only.outcome, only.steps) == ("r1", Outcome.ROLLED_BACK, {"prepare": 3.25})


def test_entries_are_read_back_whole_and_filtered(url):
    ledger = Ledger(url)
    full = entry("r1", config="c0ffee00c0de", committed_at="2026-12-01T08:00:00+00:00", failed_requests=3, restore_seconds=0.2,
                 extra_instance_seconds=40.0, steps={"build": 12.5}, failure="why")
    ledger.record(full)
    ledger.record(entry("r2", environment="dev", finished="2026-12-02T10:00:00+00:00"))
    assert ledger.entries(environment="prod") == [full]
    assert [e.run_id for e in ledger.entries(since="2026-12-02T00:00:00+00:00")] == ["r2"]
    assert [e.run_id for e in ledger.entries(until="2026-12-02T00:00:00+00:00")] == ["r1"]
    assert ledger.entries(service="cart") == []


def _write(url: str, writer: int, count: int) -> int:
    ledger = Ledger(url)  # its own engine and connections, as another worker's record task would have
    for n in range(count):
        ledger.record(entry(f"w{writer}-{n}", environment=("dev", "prod")[writer % 2]))
    ledger.dispose()
    return count


def test_writers_at_once_all_land(url):
    with ProcessPoolExecutor(4, mp_context=get_context("spawn")) as pool:  # fresh database: they migrate at once too
        assert sum(pool.map(_write, [url] * 4, range(4), [15] * 4)) == 60
    assert len(Ledger(url).entries()) == 60


def test_the_schema_is_versioned_and_a_current_one_is_left_alone(url):
    engine = engine_for(url)
    assert migrate(engine) == 0  # from nothing
    Ledger(url).record(entry("r1"))
    assert migrate(engine) == VERSION  # already current: nothing to do, nothing lost
    with engine.connect() as conn:
        assert current_version(conn) == VERSION
    assert [e.run_id for e in Ledger(url).entries()] == ["r1"]


def test_a_schema_newer_than_this_deployflow_is_refused(url):
    engine = engine_for(url)
    migrate(engine)
    with engine.begin() as conn:
        conn.execute(schema_version.update().values(version=VERSION + 1))
    with pytest.raises(RuntimeError, match=f"schema is version {VERSION + 1}, newer than this deployflow's {VERSION}"):
        migrate(engine)


def test_a_json_lines_ledger_is_imported_once(url, tmp_path):
    old = tmp_path / "ledger.jsonl"
    lines = [{**entry("r1").to_dict(), "unknown_old_field": 1}, {k: v for k, v in entry("r2").to_dict().items() if k != "config"}]
    old.write_text("".join(json.dumps(line) + "\n" for line in lines) + "\n")
    ledger = Ledger(url)
    assert ledger.import_jsonl(old) == (2, 0)
    assert ledger.import_jsonl(old) == (0, 2)  # again: nothing twice
    assert sorted(e.run_id for e in ledger.entries()) == ["r1", "r2"]


def test_a_broken_line_names_its_place_and_imports_nothing_after_it(url, tmp_path):
    old = tmp_path / "ledger.jsonl"
    old.write_text(json.dumps(entry("r1").to_dict()) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"ledger.jsonl:2: not a ledger line"):
        Ledger(url).import_jsonl(old)


@pytest.mark.parametrize("bad", ["mysql://u@h/db", "redis://h"])
def test_only_sqlite_and_postgresql_urls(bad):
    with pytest.raises(ValueError, match="is not valid; valid values are sqlite, postgresql"):
        engine_for(bad)


def test_postgres_scheme_as_airflow_writes_it(postgres_url):
    engine = engine_for(postgres_url.replace("postgresql://", "postgres://"))  # Connection.get_uri()'s spelling
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1")).scalar() == 1


def test_a_version_1_ledger_is_migrated_in_place_keeping_its_rows(url):
    from deployflow.ledger.schema import MIGRATIONS, releases

    engine = engine_for(url)
    with engine.begin() as conn:  # a ledger made by the first schema, with a release in it
        schema_version.create(conn)
        MIGRATIONS[0](conn)
        conn.execute(schema_version.insert().values(version=1))
        conn.execute(sa.text(f"INSERT INTO {releases.name} (service, run_id, environment, strategy, requested_by, reason, outcome, "
                             "finished_at) VALUES ('shop', 'old', 'prod', 'rolling', 'bob', '', 'promoted', '2026-11-01T00:00:00+00:00')"))
    assert migrate(engine) == 1
    ledger = Ledger(url)
    ledger.record(entry("new", digest="sha256:" + "a" * 64, analysis_score=97.5))
    assert {(e.run_id, e.digest, e.analysis_score) for e in ledger.entries()} == {("old", None, None), ("new", "sha256:" + "a" * 64, 97.5)}


# Every sentence an earlier record task wrote (and one no version wrote), as schema 5 kept it, and what v6 makes of it.
SENTENCES = [
    ("promoted", Outcome.PROMOTED, None),
    ("refused", Outcome.REFUSED, None),
    ("rejected", Outcome.REJECTED, None),  # already a value: left as it is
    ("rejected, rolled back to 0123456789ab", Outcome.REJECTED, "rejected, rolled back to 0123456789ab"),
    ("rolled back to 0123456789ab", Outcome.ROLLED_BACK, "rolled back to 0123456789ab"),
    ("rolled back (first deploy: nothing left)", Outcome.ROLLED_BACK, "rolled back (first deploy: nothing left)"),
    ("failed during deploy", Outcome.FAILED, "failed during deploy"),
    ("failed before deploy", Outcome.FAILED_BEFORE_DEPLOY, "failed before deploy"),
    ("fell over", Outcome.FAILED, "fell over"),  # a row edited by hand: ended, not promoted, its words kept
]


def test_a_version_5_ledger_has_its_outcome_sentences_classified_once_and_a_missing_environment_is_none(url):
    from deployflow.ledger.schema import MIGRATIONS, releases

    engine = engine_for(url)
    with engine.begin() as conn:  # a ledger at schema 5, with a release of every sentence in it
        schema_version.create(conn)
        for migration in MIGRATIONS[:5]:
            migration(conn)
        conn.execute(schema_version.insert().values(version=5))
        for n, (sentence, _, _) in enumerate(SENTENCES):
            environment = "?" if sentence == "refused" else "prod"  # refused before it named one
            conn.execute(sa.text(f"INSERT INTO {releases.name} (service, run_id, environment, strategy, requested_by, reason, "
                                 "outcome, finished_at) VALUES ('shop', :run, :env, :strategy, 'bob', '', :outcome, :at)"),
                         {"run": f"r{n}", "env": environment, "strategy": "?" if environment == "?" else "canary",
                          "outcome": sentence, "at": f"2026-11-01T00:00:0{n}+00:00"})
    assert migrate(engine) == 5
    entries = Ledger(url).entries()
    assert [(e.outcome, e.outcome_detail) for e in entries] == [(outcome, said) for _, outcome, said in SENTENCES]
    refused = entries[1]
    assert (refused.environment, refused.strategy) == ("none", "none")
    assert {e.environment for e in entries} == {"prod", "none"}
    engine.dispose()
