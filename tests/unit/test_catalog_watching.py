"""The catalog as the Releases view reads it (deployflow.catalog.watching): each file parsed again only when it
changed, a bad file its own service's problem, a removed file gone."""

from __future__ import annotations

import os

from deployflow.catalog import watching
from deployflow.catalog.watching import WatchedCatalog
from tests.parse_figures import generate


def test_a_file_is_parsed_again_only_when_it_changed(tmp_path, monkeypatch):
    first, second, third = generate(3, tmp_path / "catalog")
    parsed = []
    real = watching.load_service
    monkeypatch.setattr(watching, "load_service", lambda path, grants: parsed.append(path.name) or real(path, grants))
    catalog = WatchedCatalog(tmp_path / "catalog")
    assert sorted(catalog.read().services) == ["svc-0000", "svc-0001", "svc-0002"]
    assert catalog.read().problems == [] and len(parsed) == 3  # the second reading parsed nothing
    stat = second.stat()
    second.write_text(second.read_text().replace("owner: platform-team", "owner: platform-tea2"))  # the same size: by its time
    os.utime(second, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert catalog.read().services["svc-0001"].owner == "platform-tea2" and parsed[3:] == ["svc-0001.yaml"]
    third.unlink()
    first.write_text("name: svc-0000\nsource: {repo: .}\n")
    reading = catalog.read()
    assert sorted(reading.services) == ["svc-0001"]
    assert [p.service for p in reading.problems] == ["svc-0000"] and "svc-0000.yaml" in reading.problems[0].message


def test_a_missing_directory_is_a_problem_not_an_error(tmp_path):
    reading = WatchedCatalog(tmp_path / "nowhere").read()
    assert reading.services == {} and [p.service for p in reading.problems] == ["(catalog)"]
