"""What the service page's live parts read, for whom: the releases in flight (``in_flight.py`` puts them
together) and the commits between two versions (``pipeline/mirror.py``). Each answer first asks
``ReleasesReading.row`` (the user may read the service's runs, else 403; the service is known, else 404),
then reads only what it shows: the runs holding a lock, their environments' release records, the mirror.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deployflow.airflow.releases_view.in_flight import (
    RecordReading, ReleaseRecords, RunKey, RunProgress, RunProgressState, in_flight,
)
from deployflow.airflow.releases_view.view import ReleasesReading
from deployflow.catalog import Service
from deployflow.configuration import image_version_of
from deployflow.pipeline.mirror import Changes, commits_between, mirror_path


@dataclass(frozen=True)
class InFlightReaders:
    """Where the live parts read.

    :param progress: the runs' current steps and analysis verdicts (``run_progress.MetadataProgress``).
    :param records: each environment's release record (``release_records.SiteRecords``).
    :param state_dir: the stack's state directory, where the repositories' mirrors are (``pipeline/mirror.py``);
        None: this view reads no mirror.
    """

    progress: RunProgressState
    records: ReleaseRecords
    state_dir: Callable[[], Path | None]


class Unread:
    """The live parts' readers of a view given none: no run's progress, no record, no mirror (each said)."""

    def progress(self, keys: set[RunKey]) -> dict[RunKey, RunProgress]:
        return {}

    def read(self, service: Service, environment: str) -> RecordReading:
        return RecordReading(problem="this view reads no release record")

    @classmethod
    def readers(cls) -> InFlightReaders:
        return InFlightReaders(progress=cls(), records=cls(), state_dir=lambda: None)


class InFlightReading:
    """:param reading: the view's reading (access, catalog, ledger); :param readers: the live parts' own."""

    def __init__(self, reading: ReleasesReading, readers: InFlightReaders) -> None:
        self.reading = reading
        self.readers = readers

    def in_flight(self, user: Any, name: str) -> dict[str, Any]:
        """Each environment of ``name`` whose lock a run holds: the run, its steps, its split, its verdicts."""
        row, service = self.reading.row(user, name)
        holders = {c["environment"]: c["waits"]["lock"] for c in row["cells"] if c["waits"]["lock"]}
        progress = self.readers.progress.progress({(h["dag_id"], h["run_id"]) for h in holders.values()})
        records = {env: self._record(service, env) for env in holders}
        answer = in_flight(name, row["cells"], progress, records,
                           generated_at=self.reading.readers.clock().isoformat())
        return {**answer, "dag_id": row["dag_id"]}

    def _record(self, service: Any, environment: str) -> RecordReading:
        if service is None or environment not in service.environments:
            return RecordReading(problem=f"{environment} is not in the service's catalog entry: no release store to read")
        return self.readers.records.read(service, environment)

    def changes(self, user: Any, name: str, old: str, new: str) -> Changes:
        """The commits ``new`` adds to ``old`` (versions or commits of ``name``), from the service's mirror."""
        self.reading.row(user, name)  # 403, 404
        old, new = image_version_of(old or ""), image_version_of(new or "")
        state_dir = self.readers.state_dir()
        if state_dir is None:
            return Changes(old, new, problem="this view reads no mirror of the repositories")
        mirrors, mirror = mirror_path(state_dir, "x").parent, mirror_path(state_dir, name)
        if mirror.parent != mirrors or name.startswith("."):  # a name of the ledger's is data: never a path elsewhere
            return Changes(old, new, problem=f"{name!r} cannot name a mirror")
        return commits_between(mirror, old, new)
