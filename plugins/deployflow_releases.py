"""deployflow's Releases view in Airflow's UI, an Airflow 3 plugin: the one file of ``plugins/`` that
``.airflowignore`` leaves to Airflow's plugin manager (which imports each file it is left as a top-level
module named after its stem). The view itself is the package ``deployflow.airflow.releases_view``.

- ``fastapi_apps``: its FastAPI app, which Airflow's API server mounts under ``/deployflow`` behind Airflow's
  own sign-in; built when the API server asks for it, not when another process loads its plugins;
- ``external_views``: the grid in Airflow's navigation ("Releases", a page of the UI that frames it).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

from deployflow.airflow.releases_view import URL_PREFIX, external_view


class DeployflowReleasesPlugin(AirflowPlugin):
    name = "deployflow_releases"
    external_views = [external_view()]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        # The app, FastAPI and Airflow's API modules: the API server's to import (seconds), not every process's.
        from deployflow.airflow.releases_view.app import airflow_releases_app

        return [{"app": airflow_releases_app(), "url_prefix": URL_PREFIX, "name": "deployflow releases"}]
