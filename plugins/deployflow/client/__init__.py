"""Trigger and follow releases through Airflow's REST API, as CI does: ``api.py`` is the API as a release needs
it, ``runs.py`` what is read of a finished run, ``cli.py`` the command (``python -m deployflow.client``) and its exit
codes; ``release.py``, ``gates.py``, ``freezes.py``, ``steering.py`` (abort, promote), ``status.py`` its commands."""

from deployflow.client.api import AirflowClient, ApiError, ClientError
from deployflow.client.runs import failure_reason, run_seconds, timings

__all__ = ["AirflowClient", "ApiError", "ClientError", "failure_reason", "run_seconds", "timings"]
