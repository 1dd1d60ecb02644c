"""The ledger's commands: ``python -m deployflow.ledger <command> [options]``.

    import    [--url URL] FILE...        bring in JSON-lines ledgers, once
    report    ... [--json]               DORA and success-rate figures: a table (or JSON) and charts (report.py)
    exporter  ...                        release metrics for Prometheus on 127.0.0.1 (exporter.py)
    backup    ...  |  restore ...        a consistent copy of the ledger and release records (backup.py)
    recover   ...                        an environment back to its last promoted version (deployer/recover.py)

Each command's module has ``main(argv) -> int``; ``--help`` after a command lists its options.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from deployflow.ledger import Ledger
from deployflow.settings import Settings

COMMANDS = {"import": None, "report": "deployflow.ledger.report", "exporter": "deployflow.ledger.exporter",
            "backup": "deployflow.ledger.backup", "restore": "deployflow.ledger.backup",
            # Recovery drives the deployer's engine from the ledger's rows: it lives beside the deployer.
            "recover": "deployflow.deployer.recover"}


def import_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deployflow.ledger import")
    parser.add_argument("--url", default=settings.ledger_url,
                        help="the ledger (default $DEPLOYFLOW_LEDGER_URL, else SQLite in the state directory)")
    parser.add_argument("files", nargs="+", type=Path)
    return parser


def _import(argv: list[str]) -> int:
    args = import_parser(Settings.from_environ()).parse_args(argv)
    ledger = Ledger(args.url)
    for path in args.files:
        imported, skipped = ledger.import_jsonl(path)
        print(f"{path}: {imported} release(s) imported, {skipped} already there")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m deployflow.ledger {{{','.join(COMMANDS)}}} [options]", file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if COMMANDS[command] is None:
        return _import(rest)
    module = importlib.import_module(COMMANDS[command])
    return module.main([command, *rest] if command in ("backup", "restore") else rest)


if __name__ == "__main__":
    sys.exit(main())
