"""The service page's live routes, added to the Releases view's app (``app.py``):

    GET /api/services/{service}/in-flight                  its releases in flight (JSON; the page polls it)
    GET /api/services/{service}/changes?old=&new=          the commits between two versions (JSON)
    GET /services/{service}/changes?old=&new=              the same, a page (linked from the history)

Behind the app's own ``get_user`` like every route; the pages are the app's autoescaped templates.
"""

from __future__ import annotations

from typing import Any

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from deployflow.airflow.releases_view.in_flight_reading import InFlightReading

REFRESH_S = 2  # how often the page asks again while a release is in flight


def add_in_flight_routes(app: FastAPI, live: InFlightReading, templates: Jinja2Templates, *, airflow_base: str) -> None:
    """The routes above, on ``app``."""

    @app.get("/api/services/{service}/in-flight")
    def api_in_flight(service: str, user: GetUserDep) -> dict[str, Any]:
        return live.in_flight(user, service)

    @app.get("/api/services/{service}/changes")
    def api_changes(service: str, user: GetUserDep, old: str = "", new: str = "") -> dict[str, Any]:
        return live.changes(user, service, old, new).to_dict()

    @app.get("/services/{service}/changes", response_class=HTMLResponse)
    def changes_page(request: Request, service: str, user: GetUserDep, old: str = "", new: str = "") -> Response:
        return templates.TemplateResponse(request, "changes.html", {
            "service": service, "changes": live.changes(user, service, old, new).to_dict(), "airflow": airflow_base})
