"""Resolved configurations on a Docker host: one 0600 file per configuration version, in a 0700 directory.

The prepare task writes the release's configuration here before the deployer
runs; the deployer reads it whenever it starts an instance of that release,
and rollback reads the previous release's (its version is in the previous
release version). Only the host's root can read them, as with the engine's
own container configuration; they are never in an image, a log or XCom.
"""

from __future__ import annotations

import os
from pathlib import Path

from deployflow.configuration import ResolvedConfig
from deployflow.record import StepFailed

KEEP = 10  # configuration versions kept per environment: rollback needs the previous one, a person maybe more


class ConfigFiles:
    def __init__(self, directory: Path) -> None:
        self.dir = directory

    @classmethod
    def of(cls, state_dir: Path, *, stack: str, service: str, environment: str) -> ConfigFiles:
        """One environment's configurations, in the routers' state directory (which the deployer mounts)."""
        return cls(state_dir / "config" / f"{stack}-{service}-{environment}")

    def path(self, version: str) -> Path:
        return self.dir / f"{version}.json"

    def save(self, version: str, config: ResolvedConfig, *, in_use: frozenset[str] = frozenset()) -> None:
        """Write once (a version names its content); then prune the oldest beyond :data:`KEEP`, never one
        that instances run (``in_use``) or the one just saved."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.dir.chmod(0o700)
        target = self.path(version)
        if not target.exists():
            tmp = target.with_suffix(f".tmp{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(config.to_json())
            tmp.replace(target)
        os.utime(target)  # the newest release's stays newest, so pruning never takes it
        for stale in sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime)[:-KEEP]:
            if stale.stem not in in_use and stale != target:
                stale.unlink(missing_ok=True)

    def load(self, version: str) -> ResolvedConfig:
        """The configuration of ``version`` ('' : a release with none)."""
        if not version:
            return ResolvedConfig()
        try:
            return ResolvedConfig.from_json(self.path(version).read_text())
        except FileNotFoundError:
            raise StepFailed(f"configuration {version} is not on this host ({self.path(version)}); "
                             "release it again from prepare, which writes it") from None
