"""The Releases view inside Airflow's UI: a grid of services x environments (what is live, since when, by whom,
how it got there, what waits), a page per service (its history, its figures and charts), and their JSON API.

An Airflow 3 plugin (``plugins/deployflow_releases.py``): a FastAPI app that Airflow's API server mounts under
:data:`URL_PREFIX`, behind Airflow's own sign-in and roles (``access.py``), and an external view that puts its
grid in Airflow's navigation (:func:`external_view`). Read only: the catalog, the ledger and its locks, and
Airflow's runs and freeze Variable.

- ``board.py``: the answers as plain data; ``view.py``: what each answer reads, and for whom;
- ``access.py``: the signed-in user and what Airflow's auth manager lets them do;
- ``airflow_state.py``: what is read from Airflow's metadata database and Variables;
- ``app.py``: the routes and the pages (``templates/``);
- the service page's live parts: ``in_flight.py`` (the releases in flight as plain data), ``in_flight_reading.py``
  (what they read, for whom), ``in_flight_routes.py`` (their routes), ``run_progress.py`` (the runs' steps and
  analysis verdicts in Airflow's metadata database), ``release_records.py`` (the deployer's release records);
  the commits between two versions come from the repository's mirror (``deployflow.pipeline.mirror``).

This module stays light (Airflow's configuration only): every Airflow process that loads plugins imports it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from airflow.configuration import conf

URL_PREFIX = "/deployflow"  # where the API server mounts the app (under its own base path)
NAV_ROUTE = "releases"  # the UI's page that frames the grid: /plugin/releases


def airflow_base_path() -> str:
    """The path Airflow is served under (``[api] base_url``'s): "" at the root of its host."""
    return urlsplit(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def external_view() -> dict[str, Any]:
    """The grid in Airflow's navigation: a page of the UI (``/plugin/releases``) that frames it."""
    return {"name": "Releases", "href": f"{airflow_base_path()}{URL_PREFIX}/", "url_route": NAV_ROUTE,
            "destination": "nav", "nav_top_level": True}
