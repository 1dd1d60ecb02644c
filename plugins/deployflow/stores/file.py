"""The release record in a JSON file (Docker hosts: beside the proxy's routes in the state directory), and the
environment's newest fencing token in the file ``fence`` beside it (``TokenHome``): the deployer container
has the state directory mounted and no ledger, and the Airflow worker that starts it shares that directory
(it writes the resolved configurations there too)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from deployflow.record import Record

TOKEN_FILE = "fence"


class FileStore:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> Record | None:
        if not self.path.exists():
            return None
        return Record.from_dict(json.loads(self.path.read_text()))

    def save(self, record: Record) -> None:
        write_atomically(self.path, json.dumps(record.to_dict(), indent=1))  # a killed step never leaves half a record

    def token(self) -> int:
        try:
            return int((self.path.parent / TOKEN_FILE).read_text())
        except FileNotFoundError:
            return 0

    def hand_token(self, token: int) -> None:
        write_atomically(self.path.parent / TOKEN_FILE, str(token))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one rename: a reader finds the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
