"""``status [SERVICE]`` and ``history SERVICE``: what is live where and what waits, and what was released, as the
Releases view answers them (its JSON API behind Airflow's sign-in: ``airflow/releases_view/app.py``), for a person
(tables in :data:`~deployflow.terminal.WIDTH` columns) or a script (``--json``: the view's document as it is).
The ledger's and the catalog's text is anyone's: every cell and line goes through ``terminal.terminal_text``."""

from __future__ import annotations

import argparse
import difflib
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from deployflow.client.api import RELEASES_API, AirflowClient, ApiError, BadInput, UnexpectedAnswer
from deployflow.client.output import as_document
from deployflow.terminal import WIDTH, table, terminal_text
from deployflow.errors import one_of
from deployflow.policies import ENVIRONMENTS

MAX_LIMIT = 500  # releases in one page of the view (ledger/live.py's MAX_PAGE; a test holds them equal)
DEFAULT_LIMIT = 20
SHORT = 8  # hex digits of a commit, a digest, a configuration version: enough to tell apart, and to roll back to
STATUS = ("version", "digest", "config", "since", "by", "strategy", "waits")
HISTORY = ("when", "environment", "version", "outcome", "took", "failed_requests", "who", "why")
HEADERS = {"since": "SINCE (UTC)", "when": "WHEN (UTC)", "failed_requests": "FAILED REQ"}
HISTORY_HEADERS = {**HEADERS, "environment": "ENV"}  # 7 wide, not 11: room for why
LIMITS = {"service": 24, "environment": 12, "version": 12, "by": 12, "who": 12, "strategy": 12, "outcome": 20}
HINTS = 3  # the known names an unknown service's error suggests at most
INDENT = "  "


def register(sub: Any, scripts: argparse.ArgumentParser) -> None:
    """Add ``status`` and ``history`` to the CLI's subcommands (``scripts``: the parent parser giving ``--json``)."""
    now = sub.add_parser("status", parents=[scripts], help="what is live in each environment and what waits there, "
                                                          "of SERVICE or of every service")
    now.add_argument("service", nargs="?", default=None)
    now.set_defaults(handler=status)
    past = sub.add_parser("history", parents=[scripts], help="the releases of SERVICE, newest first, from the ledger")
    past.add_argument("service")
    past.add_argument("--environment", default=None, help="of this environment only")
    past.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                      help=f"how many releases, newest first (1 to {MAX_LIMIT}; default {DEFAULT_LIMIT})")
    past.set_defaults(handler=history)


def status(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    """Every service's cells, a table per environment; or SERVICE's, a row per environment."""
    client = connect()
    if args.service is None:
        grid = releases_grid(client)
        print(as_document(grid) if args.json else grid_text(grid))
    else:
        page = releases_service(client, args.service, limit=1)
        print(as_document(page) if args.json else service_text(page))
    return 0


def history(args: argparse.Namespace, connect: Callable[[], AirflowClient]) -> int:
    """The newest ``--limit`` releases of SERVICE (in ``--environment`` only, if given)."""
    if args.environment is not None and args.environment not in ENVIRONMENTS:
        raise BadInput(f"--environment: {one_of(args.environment, ENVIRONMENTS)}")
    if not 1 <= args.limit <= MAX_LIMIT:
        raise BadInput(f"--limit: {args.limit} is not valid; give 1 to {MAX_LIMIT}")
    client = connect()
    page = releases_service(client, args.service, environment=args.environment, limit=args.limit)
    print(as_document(page) if args.json else history_text(page))
    return 0


def releases_grid(client: AirflowClient) -> dict[str, Any]:
    """The view's grid. :raises UnexpectedAnswer: Airflow serves no Releases view (its plugin is not loaded)."""
    try:
        return client.releases_grid()
    except ApiError as exc:
        if exc.status == 404:
            raise UnexpectedAnswer(f"Airflow at {client.base_url} has no Releases view ({RELEASES_API}/grid answered "
                                   "HTTP 404): is deployflow's plugin loaded?") from None
        raise


def releases_service(client: AirflowClient, service: str, **options: Any) -> dict[str, Any]:
    """The view's answer for ``service``.

    :raises BadInput: no service of that name (the grid tells a 404 of the view's from one of a missing view),
        or options the view refuses.
    """
    try:
        return client.releases_service(service, **options)
    except ApiError as exc:
        if exc.status == 404:
            raise unknown(service, [row["service"] for row in releases_grid(client)["services"]]) from None
        if exc.status in (400, 422):
            raise BadInput(f"the Releases view refused the options: {exc.detail}") from None
        raise


def unknown(service: str, known: list[str]) -> BadInput:
    """The error for a service neither the catalog nor the ledger knows, with the names closest to it."""
    close = difflib.get_close_matches(service, known, n=HINTS)
    hint = f"; did you mean {', '.join(close)}?" if close else "; status lists the services" if known else ""
    return BadInput(f"no service {service!r} in the catalog or the ledger{terminal_text(hint)}")


# ---- tables ------------------------------------------------------------------------------------------------------

def grid_text(grid: dict[str, Any]) -> str:
    """A table per environment, a row per service with something to show there."""
    services = grid["services"]
    if not services:
        return "\n".join(["no service: the catalog and the ledger name none you may read", *notes(grid)])
    parts = []
    for environment in grid["environments"]:
        rows = [{"service": row["service"], **cell_row(cell)} for row in services for cell in row["cells"]
                if cell["environment"] == environment and worth_a_row(cell)]
        shown = table(rows, ("service", *STATUS), indent=INDENT, headers=HEADERS, limits=LIMITS, width=WIDTH)
        parts.append(f"{terminal_text(environment)}:\n" + (shown if rows else f"{INDENT}(no service releases here)"))
    if said := notes(grid):
        parts.append("\n".join(said))
    return "\n\n".join(parts)


def service_text(page: dict[str, Any]) -> str:
    """The service, then a row per environment."""
    owner = f" (owner: {page['owner']})" if page.get("owner") else ""
    rows = [cell_row(cell) for cell in page["environments"]]
    lines = [terminal_text(f"{page['service']}{owner}:"),
             table(rows, ("environment", *STATUS), indent=INDENT, headers=HEADERS, limits=LIMITS, width=WIDTH)]
    if page.get("catalog_problem"):
        lines.append(terminal_text(f"catalog problem: {page['catalog_problem']}"))
    return "\n".join(lines + notes(page))


def history_text(page: dict[str, Any]) -> str:
    """The page of history as a table, and which releases of how many it shows."""
    from deployflow.ledger.report import duration  # the report's, written once; importing it costs SQLAlchemy (0.2 s)

    past = page["history"]
    releases = past["releases"]
    where = f" in {past['environment']}" if past.get("environment") else ""
    if not releases:
        return terminal_text(f"no release of {page['service']}{where} recorded")
    rows = [{"when": when(r.get("finished_at")), "environment": r["environment"], "version": version(r),
             "outcome": r["outcome"], "took": duration(r.get("seconds")), "failed_requests": r.get("failed_requests"),
             "who": r.get("requested_by"), "why": why(r)} for r in releases]
    first, last, total = past["offset"] + 1, past["offset"] + len(releases), past["total"]
    more = f"; --limit {min(total, MAX_LIMIT)} shows {'them all' if total <= MAX_LIMIT else 'more'}" if last < total else ""
    return "\n".join([table(rows, HISTORY, headers=HISTORY_HEADERS, limits=LIMITS, width=WIDTH),
                      terminal_text(f"{first} to {last} of {total} releases of {page['service']}{where}{more}")])


def cell_row(cell: dict[str, Any]) -> dict[str, Any]:
    """A service in an environment: its live version (None: nothing live) and what waits."""
    live = cell["live"] or {}
    return {"environment": cell["environment"], "version": version(live), "digest": short(_hex(live.get("digest"))),
            "config": short(live.get("config")), "since": when(live.get("since")), "by": live.get("by"),
            "strategy": live.get("strategy"), "waits": waits(cell)}


def worth_a_row(cell: dict[str, Any]) -> bool:
    """A cell says something: the service releases there, or did, or a run waits there."""
    waiting = cell["waits"]
    return bool(cell.get("in_catalog") or cell.get("live") or cell.get("newest") or waiting.get("lock")
                or waiting.get("queued"))


def waits(cell: dict[str, Any]) -> str:
    """What is under way or holds, the most pressing first: an approval the release holding the lock waits for (else
    that release), the runs queued behind it, a freeze, the newest release when it did not go live."""
    waiting = cell["waits"]
    said = []
    if lock := waiting.get("lock"):
        state = lock.get("state")
        said.append("approval" if lock.get("approvals") else "releasing" if state == "running"
                    else f"releasing ({state or 'a run Airflow does not know'})")
    if queued := waiting.get("queued"):
        said.append(f"{len(queued)} queued")
    if freeze := waiting.get("freeze"):
        said.append(f"frozen: {freeze.get('name')}")
    if newest := cell.get("newest"):
        said.append(f"newest {newest.get('outcome')}")
    if not cell.get("in_catalog") and not cell.get("live"):
        said.append("not in the catalog")
    return ", ".join(said)


def notes(answer: dict[str, Any]) -> list[str]:
    """What the view could not read: catalog files, the freeze Variable (which refuses every release)."""
    found = [f"catalog problem: {p.get('service')}: {p.get('message')}" for p in answer.get("problems") or []]
    if answer.get("freeze_problem"):
        found.append(f"the freeze Variable cannot be read, and every release is refused: {answer['freeze_problem']}")
    return [terminal_text(line) for line in found]


def version(release: dict[str, Any]) -> str | None:
    """The release's commit, short; its image's tag where no commit is known."""
    return short(release.get("commit")) or release.get("version")


def why(release: dict[str, Any]) -> str:
    """Why it was released, and why it did not go live."""
    failure = f"({release['failure']})" if release.get("failure") else ""
    return " ".join(p for p in (str(release.get("reason") or ""), failure) if p)


def when(text: object) -> str | None:
    """An ISO 8601 time as ``2026-12-06 17:43`` in UTC; text that is not one, as it is."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text))
    except ValueError:
        return str(text)
    return f"{moment.astimezone(timezone.utc) if moment.tzinfo else moment:%Y-%m-%d %H:%M}"


def short(text: object) -> str | None:
    return str(text)[:SHORT] if text else None


def _hex(digest: object) -> str | None:
    """A digest's hex digits, without its algorithm (``sha256:``)."""
    return str(digest).partition(":")[2] or str(digest) if digest else None
