"""The catalog as a long-running process reads it (the API server's Releases view): every file checked at each
reading, parsed again only when its size or modification time changed (or the grants did), and a bad file a
problem of its own service, never of the others (as each service's DAG fails alone, ``catalog_bundle.py``)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from deployflow.catalog.grants import Grants
from deployflow.catalog.grants_file import load_grants
from deployflow.catalog.loading import load_service
from deployflow.catalog.model import Service
from deployflow.errors import ConfigError


@dataclass(frozen=True)
class CatalogProblem:
    """A catalog file (or the grants, or the directory) that could not be read, and why."""

    service: str  # the file's stem; "(catalog)" or "(grants)" for the directory or the grants file
    message: str  # the ConfigError's sentence: the file, the field, the valid values


@dataclass(frozen=True)
class CatalogReading:
    """The services read, by name, and the files that could not be."""

    services: dict[str, Service] = field(default_factory=dict)
    problems: list[CatalogProblem] = field(default_factory=list)


@dataclass(frozen=True)
class _Parsed:
    stamp: tuple[int, int]  # (st_mtime_ns, st_size)
    grants: Grants
    service: Service | None
    problem: CatalogProblem | None


class WatchedCatalog:
    """The catalog directory ``directory``, read again at each :meth:`read`, parsing only what changed."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._parsed: dict[Path, _Parsed] = {}
        self._lock = threading.Lock()

    def read(self) -> CatalogReading:
        if not self.directory.is_dir():
            return CatalogReading(problems=[CatalogProblem("(catalog)", f"directory {self.directory} does not exist "
                                                                        "(set DEPLOYFLOW_CATALOG)")])
        try:
            grants = load_grants(self.directory)  # re-read when it changes (grants_file.py)
        except ConfigError as exc:
            return CatalogReading(problems=[CatalogProblem("(grants)", str(exc))])
        with self._lock:
            parsed = {path: self._parse(path, grants) for path in sorted(self.directory.glob("*.yaml"))}
            self._parsed = {path: p for path, p in parsed.items() if p is not None}
            kept = self._parsed.values()
        return CatalogReading(services={p.service.name: p.service for p in kept if p.service is not None},
                              problems=[p.problem for p in kept if p.problem is not None])

    def _parse(self, path: Path, grants: Grants) -> _Parsed | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None  # removed while we looked
        stamp = (stat.st_mtime_ns, stat.st_size)
        known = self._parsed.get(path)
        if known is not None and known.stamp == stamp and known.grants is grants:
            return known
        try:
            return _Parsed(stamp, grants, load_service(path, grants), None)
        except (ValueError, OSError) as exc:  # a ConfigError naming the field, or a file that is not text
            return _Parsed(stamp, grants, None, CatalogProblem(path.stem, str(exc)))
