"""The release record in a JSON file (Docker hosts: beside the proxy's routes in the state directory)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from deployflow.record import Record


class FileStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Record | None:
        if not self.path.exists():
            return None
        return Record.from_dict(json.loads(self.path.read_text()))

    def save(self, record: Record) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(record.to_dict(), indent=1))
        os.replace(tmp, self.path)  # a killed step never leaves half a record
