"""What one catalog file can claim that another also claims: an environment's front port on 127.0.0.1.

Each service's DAG is built from its own file alone, so the one rule that spans files is checked here,
once per catalog scan, and handed to each service as data: the file that claimed a port first keeps it,
and each later claimant gets an error naming the first one's file (a new team's file can break no one
else's release), every other service none. A file's first appearance is recorded with its claims (its
mtime when first scanned, kept across edits), so "first" does not change when the older file is edited.
Files are read raw (no validation: a broken file's own DAG says what is wrong with it, but
the ports it claims still count), and a scan re-reads only the files whose size or mtime changed
since the last (``PortClaims`` keeps them, and can keep them in a JSON file between processes).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


from deployflow.catalog.loading import read_yaml
from deployflow.errors import ConfigError


def front_ports(raw: Any) -> dict[str, int]:
    """The front ports a raw catalog document claims, by environment; whatever is not an int port is no claim."""
    environments = raw.get("environments") if isinstance(raw, Mapping) else None
    if not isinstance(environments, Mapping):
        return {}
    return {str(name): env["port"] for name, env in environments.items()
            if isinstance(env, Mapping) and isinstance(env.get("port"), int) and not isinstance(env["port"], bool)}


def shared_ports_of(claims: Mapping[str, Mapping[str, int]], files: Mapping[str, str],
                    first_seen: Mapping[str, int] | None = None) -> dict[str, dict[str, list[str]]]:
    """For each service that claims a port another claimed first: environment -> who holds it ("other/prod (path)").

    :param first_seen: when each service's file first appeared (any ordered stamp); the earliest claimant of a
        port keeps it (by name where two appeared at once). Absent: every claimant of a shared port is refused.
    """
    owners: dict[int, list[tuple[str, str]]] = {}
    for service, ports in sorted(claims.items()):
        for env, port in sorted(ports.items()):
            owners.setdefault(port, []).append((service, env))
    shared: dict[str, dict[str, list[str]]] = {}
    for port, claimants in owners.items():
        if len({service for service, _ in claimants}) < 2:
            continue
        if first_seen is not None:
            first = min(claimants, key=lambda c: (first_seen.get(c[0], 0), c[0]))[0]
            holders = [(s, e) for s, e in claimants if s == first]
            for service, env in claimants:
                if service != first:
                    shared.setdefault(service, {})[env] = [f"{s}/{e} ({files[s]}, the first to claim it)" for s, e in holders]
            continue
        for service, env in claimants:
            shared.setdefault(service, {})[env] = [
                f"{other}/{other_env} ({files[other]})" for other, other_env in claimants if (other, other_env) != (service, env)]
    return shared


def check_shared_ports(ports: Mapping[str, int], shared: Mapping[str, Sequence[str]], *, source: str) -> None:
    """Refuse the first environment whose front port another catalog entry claims too."""
    for env, others in sorted(shared.items()):
        if env in ports:
            raise ConfigError(f"environments.{env}.port", f"{ports[env]} is also the front port of {', '.join(others)}; "
                                                          "each front port belongs to one service's environment", source=source)


class PortClaims:
    """The front ports of every ``*.yaml`` of a catalog directory, re-read only where a file changed.

    :param cache_file: where to keep the claims between processes (a worker's scan then reads no YAML
        unless a file changed); None keeps them in memory only.
    """

    def __init__(self, cache_file: Path | None = None) -> None:
        self.cache_file = cache_file
        # path -> ([mtime_ns, size], ports by environment, first appearance (the mtime_ns when first scanned))
        self._seen: dict[str, tuple[list[int], dict[str, int], int]] = {}
        if cache_file is not None and cache_file.is_file():
            try:
                self._seen = {k: (list(v[0]), dict(v[1]), int(v[2] if len(v) > 2 else v[0][0]))
                              for k, v in json.loads(cache_file.read_text()).items()}
            except (ValueError, TypeError, IndexError, AttributeError):
                self._seen = {}  # a damaged cache is only a slower scan (and first appearances by mtime again)

    def scan(self, files: Sequence[Path]) -> dict[str, dict[str, list[str]]]:
        """Ports claimed first by another service, by service (file stem): environment -> the holder."""
        seen: dict[str, tuple[list[int], dict[str, int], int]] = {}
        for path in files:
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue  # removed while scanning: no longer a claim
            key, stamp = str(path), [stat.st_mtime_ns, stat.st_size]
            earlier = self._seen.get(key)
            if earlier and earlier[0] == stamp:
                seen[key] = earlier
                continue
            try:
                raw = read_yaml(path.read_text())
            except (OSError, UnicodeDecodeError, ConfigError):
                raw = None  # its own DAG file shows the error
            seen[key] = (stamp, front_ports(raw), earlier[2] if earlier else stat.st_mtime_ns)
        changed = seen != self._seen
        self._seen = seen
        if changed and self.cache_file is not None:
            write_atomically(self.cache_file, json.dumps(seen, sort_keys=True))
        return shared_ports_of({Path(k).stem: v[1] for k, v in seen.items()}, {Path(k).stem: k for k in seen},
                               {Path(k).stem: v[2] for k, v in seen.items()})


def write_atomically(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one (several processes write the same file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
