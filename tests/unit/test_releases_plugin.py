"""The Releases view as Airflow's plugin manager finds it: the one file of plugins/ it is left, the plugin
that file defines, its FastAPI app and its external view as Airflow's API reads them."""

from __future__ import annotations

import sys
from pathlib import Path

from fastapi import FastAPI

from airflow._shared.module_loading import find_path_from_directory
from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory
from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


def test_the_plugin_manager_is_left_the_plugin_file_alone():
    """Every other file would be imported as a top-level module named after its stem (a docker.py as docker)."""
    found = [Path(p).relative_to(PLUGINS).as_posix() for p in find_path_from_directory(PLUGINS, ".airflowignore", "glob")]
    assert [p for p in found if p.endswith(".py")] == ["deployflow_releases.py"]


def test_the_plugin_gives_the_api_server_its_app_and_the_ui_its_view():
    plugins, errors = _load_plugins_from_plugin_directory(str(PLUGINS))
    try:
        assert errors == {} and [p.name for p in plugins] == ["deployflow_releases"]
        [app] = plugins[0].fastapi_apps
        assert app["url_prefix"] == "/deployflow" and isinstance(app["app"], FastAPI)
        assert not any(app["url_prefix"].startswith(reserved) for reserved in RESERVED_URL_PREFIXES)
        assert plugins[0].fastapi_apps[0]["app"] is app["app"]  # built once
        [view] = plugins[0].external_views
        assert ExternalViewResponse.model_validate(view).model_dump(exclude_none=True) == {
            "name": "Releases", "href": "/deployflow/", "url_route": "releases", "destination": "nav", "nav_top_level": True}
    finally:
        sys.modules.pop("deployflow_releases", None)
