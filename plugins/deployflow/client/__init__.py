"""Trigger and follow releases through Airflow's REST API, as CI does: ``api.py`` is the API as a release needs
it, ``cli.py`` the command (``python -m deployflow.client``) and its exit codes."""

from deployflow.client.api import AirflowClient, ApiError, ClientError, failure_reason, run_seconds, timings

__all__ = ["AirflowClient", "ApiError", "ClientError", "failure_reason", "run_seconds", "timings"]
