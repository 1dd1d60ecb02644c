"""The Releases view's FastAPI app, which Airflow's API server mounts under ``/deployflow``:

    GET /api/grid                                  services x environments (JSON)
    GET /api/services/{service}                    a service: environments, a page of history, figures (JSON)
        ?environment=&limit=50&offset=0&since=YYYY-MM-DD&until=YYYY-MM-DD
    GET /api/services/{service}/charts/{name}.png  a chart of ``make report`` (?environment=&since=&until=)
    POST /api/services/{service}/environments/{environment}/{rollback,abort,approve,reject}, /api/{freeze,unfreeze}
                                                   the handles (``handles.py``)
    GET /                                          the grid, a page
    GET /services/{service}                        the service, a page (the same options as its JSON), with its
                                                   releases in flight, refreshed as they go
    and the live routes of ``in_flight_routes.py``: a service's releases in flight (JSON), the commits between
    two of its versions (JSON, a page)

Every route depends on Airflow's ``get_user`` (the app's own dependency, whatever the route's): no signed-in
Airflow user, no answer but 401 (a page says where to sign in). There are no docs or OpenAPI routes. The
pages are Jinja2 templates of this package with autoescape on: a catalog's or the ledger's text is only ever a
value in them, escaped, never a template.
"""

from __future__ import annotations

import threading
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import jinja2
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import GetUserDep, get_user
from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from starlette.datastructures import URL
from starlette.exceptions import HTTPException as StarletteHTTPException

from deployflow.airflow.ledger import ledger_url
from deployflow.airflow.releases_view import airflow_base_path
from deployflow.airflow.releases_view.airflow_state import MetadataState
from deployflow.airflow.releases_view.handles import add_handles
from deployflow.airflow.releases_view.in_flight_reading import InFlightReaders, InFlightReading, Unread
from deployflow.airflow.releases_view.in_flight_routes import REFRESH_S, add_in_flight_routes
from deployflow.airflow.releases_view.release_records import SiteRecords
from deployflow.airflow.releases_view.run_progress import MetadataProgress
from deployflow.airflow.releases_view.view import Readers, ReleasesReading
from deployflow.airflow.settings import settings
from deployflow.catalog.watching import WatchedCatalog
from deployflow.errors import one_of
from deployflow.ledger.live import MAX_PAGE
from deployflow.ledger.report import duration, percent
from deployflow.ledger.store import engine_for
from deployflow.platforms.base import StackSettings
from deployflow.policies import ENVIRONMENTS

TEMPLATES = Path(__file__).parent / "templates"
CHART_NAMES = ("releases_per_day", "lead_time", "durations")  # ledger/charts.py's CHARTS (a test holds them equal)
_drawing = threading.Lock()  # pyplot's figures are one global state: one chart drawn at a time


def service_options(environment: str | None = None, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
                    offset: Annotated[int, Query(ge=0)] = 0, since: str | None = None,
                    until: str | None = None) -> dict[str, Any]:
    """A service's options, the same for its JSON, its page and its charts; 400 for an unknown environment."""
    if environment and environment not in ENVIRONMENTS:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, f"environment: {one_of(environment, ENVIRONMENTS)}")
    return {"environment": environment or None, "limit": limit, "offset": offset, "since": since or None,
            "until": until or None}


ServiceOptions = Annotated[dict[str, Any], Depends(service_options)]


def page_environment() -> jinja2.Environment:
    """The pages' templates, autoescaped; a missing value is an error, not an empty string."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters.update(duration=duration, percent=percent, short=lambda text: (text or "")[:12],
                       when=lambda text: (text or "")[:16].replace("T", " "))
    env.globals.update(with_query=with_query, earlier_commits=earlier_commits)
    return env


def earlier_commits(releases: list[dict[str, Any]], environment: str, live: str | None) -> list[str]:
    """The commits ``environment`` promoted before its live one, newest first, each once: where a rollback may go."""
    found = [r["commit"] for r in releases if r["environment"] == environment and r["outcome"] == "promoted" and r["commit"]]
    return [c for c in dict.fromkeys(found) if c != live]


def with_query(url: Any, **params: Any) -> str:
    """``url`` (a route's, from ``url_for``) with the query parameters that have a value."""
    return str(URL(str(url)).include_query_params(**{k: v for k, v in params.items() if v is not None}))


def _api(request: Request) -> bool:
    return request.url.path.removeprefix(request.scope.get("root_path", "")).startswith("/api/")


def releases_app(readers: Readers, *, airflow_base: str = "", live: InFlightReaders | None = None) -> FastAPI:
    """The app over ``readers``. :param airflow_base: the path of Airflow's UI, for the links to its runs;
    :param live: where the releases in flight and the commits are read (None: nowhere, and the pages say so)."""
    reading = ReleasesReading(readers)
    in_flight = InFlightReading(reading, live or Unread.readers())
    templates = Jinja2Templates(env=page_environment())
    app = FastAPI(title="deployflow releases", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(get_user)])

    @app.exception_handler(StarletteHTTPException)
    async def refused(request: Request, exc: StarletteHTTPException) -> Response:
        """JSON for the API (FastAPI's own answer); for a page, a page saying why, and where to sign in."""
        if _api(request):
            return await http_exception_handler(request, exc)
        sign_in = get_auth_manager().get_url_login(next_url=str(request.url)) if exc.status_code == 401 else None
        return templates.TemplateResponse(request, "refused.html", {"status": exc.status_code, "detail": str(exc.detail),
                                                                   "sign_in": sign_in}, status_code=exc.status_code)

    @app.get("/api/grid")
    def api_grid(user: GetUserDep) -> dict[str, Any]:
        return reading.grid(user)

    @app.get("/api/services/{service}")
    def api_service(service: str, user: GetUserDep, options: ServiceOptions) -> dict[str, Any]:
        return reading.service(user, service, **options)

    @app.get("/api/services/{service}/charts/{chart}.png")
    def api_chart(service: str, chart: str, user: GetUserDep, options: ServiceOptions) -> Response:
        from deployflow.ledger.charts import chart as draw  # matplotlib: about a second to import, paid at the first chart

        if chart not in CHART_NAMES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no chart {chart!r}; the charts are {', '.join(CHART_NAMES)}")
        period = reading.period(options["since"], options["until"])

        def drawn(engine: Any) -> bytes:
            with _drawing:
                return draw(chart, engine, period, service=service, environment=options["environment"])

        return Response(reading.chart(user, service, drawn), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=60"})

    add_handles(app, reading.actor)

    @app.get("/", response_class=HTMLResponse)
    def grid_page(request: Request, user: GetUserDep) -> Response:
        return templates.TemplateResponse(request, "grid.html", {"grid": reading.grid(user), "airflow": airflow_base})

    @app.get("/services/{service}", response_class=HTMLResponse)
    def service_page(request: Request, service: str, user: GetUserDep, options: ServiceOptions) -> Response:
        answer = reading.service(user, service, **options)
        return templates.TemplateResponse(request, "service.html", {
            "page": answer, "options": options, "airflow": airflow_base, "charts": CHART_NAMES,
            "in_flight": in_flight.in_flight(user, service), "refresh_s": REFRESH_S})

    add_in_flight_routes(app, in_flight, templates, airflow_base=airflow_base)
    return app


@cache
def airflow_releases_app() -> FastAPI:
    """The app as the plugin gives it to Airflow's API server: the stack's catalog (re-read as it changes), its
    ledger (the connection ``deployflow_ledger``, else ``$DEPLOYFLOW_LEDGER_URL``, else SQLite in the state
    directory: what the record task writes), Airflow's metadata database. Built once per API server process."""
    stack = settings()

    @cache
    def ledger() -> Any:  # the ledger's URL is asked of Airflow's connections at the first answer, not at import
        return engine_for(ledger_url(stack.state_dir), reader=True)

    readers = Readers(catalog=WatchedCatalog(stack.catalog_dir).read, ledger=ledger, airflow=MetadataState())
    live = InFlightReaders(progress=MetadataProgress(), records=SiteRecords(lambda: StackSettings.of(stack)),
                           state_dir=lambda: stack.state_dir)
    return releases_app(readers, airflow_base=airflow_base_path(), live=live)
