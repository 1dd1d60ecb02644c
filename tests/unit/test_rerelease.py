"""A release measured against what its environment runs: the live commit and configuration again is nothing to do,
the live commit with a new configuration takes the live image unbuilt, anything else is built (issue 23)."""

from __future__ import annotations

import pytest

from deployflow.governance.rerelease import ALREADY_LIVE, BUILD, REUSE, against_live
from tests.unit.test_governance import _entry

LIVE = "b" * 40
STAGING = [  # oldest first: a, then b (live, configuration cfg1), then c rolled back and a refusal
    _entry("a" * 40, "promoted", "2026-12-01T10:00:00+00:00", config="cfg1"),
    _entry(LIVE, "promoted", "2026-12-01T12:00:00+00:00", config="cfg1", tests={"unit": {"suite": "unit", "ok": True}}),
    _entry("c" * 40, "rolled_back", "2026-12-01T13:00:00+00:00", config="cfg1"),
    _entry("c" * 40, "refused", "2026-12-01T13:30:00+00:00"),
]


def measured(entries, commit, config="cfg1", others=0):
    return against_live(entries, environment="staging", commit=lambda: commit, config=lambda: config,
                        others_running=lambda: others)


@pytest.mark.parametrize(("entries", "commit", "config", "others", "need", "says"), [
    (STAGING, LIVE, "cfg1", 0, ALREADY_LIVE, "bbbbbbbbbbbb is live in staging (run run-bbbb) with the same configuration (cfg1): "
                                         "nothing to build, test or deploy"),
    (STAGING, LIVE, "cfg2", 0, REUSE, "bbbbbbbbbbbb is live in staging (run run-bbbb) with configuration cfg1: releasing "
                                  "configuration cfg2 with its image, unbuilt"),
    (STAGING, LIVE, "", 0, REUSE, "releasing configuration none with its image"),  # the configuration removed
    (STAGING, "a" * 40, "cfg1", 0, BUILD, "commit aaaaaaaaaaaa is not the live one (bbbbbbbbbbbb)"),  # an earlier release
    (STAGING, "d" * 40, "cfg1", 0, BUILD, "commit dddddddddddd is not the live one"),
    (STAGING, None, "cfg1", 0, BUILD, "the ref's commit is known only after a checkout"),
    ([], LIVE, "cfg1", 0, BUILD, "nothing promoted in staging yet"),
    (STAGING[2:], "c" * 40, "cfg1", 0, BUILD, "nothing promoted in staging yet"),  # a rolled back release is not live
    # What serves is not known after a release that failed during its deploy: its image again, through the lock.
    ([*STAGING, _entry("d" * 40, "failed", "2026-12-01T14:00:00+00:00")], LIVE, "cfg1", 0, REUSE,
     "but run run-dddd failed during its deploy since"),
    (STAGING, LIVE, "cfg1", 1, REUSE, "but 1 other run(s) of the service may change it first"),
])
def test_a_release_is_measured_against_the_live_one(entries, commit, config, others, need, says):
    found = measured(entries, commit, config, others)
    assert found.need == need and says in found.reason, found


def test_the_live_release_is_taken_with_its_digest_tests_and_configuration():
    for config in ("cfg1", "cfg2"):
        artifact = measured(STAGING, LIVE, config).artifact
        assert (artifact.sha, artifact.run_id, artifact.source, artifact.config) == (LIVE, "run-bbbb", "staging", "cfg1")
        assert artifact.image == f"127.0.0.1:5000/shop:{'b' * 12}@sha256:{'bbbb' * 16}"  # by digest: what was tested
        assert artifact.tests == {"unit": {"suite": "unit", "ok": True}}
    assert measured(STAGING, "d" * 40).artifact is None


def test_each_fact_is_asked_only_when_the_answer_depends_on_it():
    asked = []

    def ask(name, value):
        return lambda: asked.append(name) or value

    against_live([], environment="staging", commit=ask("git", LIVE), config=ask("secrets", "cfg1"), others_running=ask("runs", 0))
    assert asked == []  # nothing live: no remote, no secret, no scheduler
    against_live(STAGING, environment="staging", commit=ask("git", "d" * 40), config=ask("secrets", "cfg1"),
                 others_running=ask("runs", 0))
    assert asked == ["git"]
    asked.clear()
    against_live(STAGING, environment="staging", commit=ask("git", LIVE), config=ask("secrets", "cfg1"),
                 others_running=ask("runs", 0))
    assert asked == ["git", "secrets", "runs"]
