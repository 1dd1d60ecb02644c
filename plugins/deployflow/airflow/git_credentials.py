"""An https repository's credentials, from the Airflow connection ``source.credentials`` names (granted to the
service like any connection it names): its login and password, masked in every log, handed to git through
its environment for the clone alone (``deployflow.pipeline.checkout.credentials_env``)."""

from __future__ import annotations

import functools

from airflow.sdk import Connection
from airflow.sdk.exceptions import AirflowFailException
from airflow.sdk.log import mask_secret

from deployflow.catalog import Source
from deployflow.pipeline.checkout import Runner, credentials_env, run_git


def git_runner(source: Source) -> Runner:
    """``run_git`` as the checkout of ``source`` runs it: with the connection's credentials where it names one."""
    if not source.credentials:
        return run_git
    try:
        conn = Connection.get(source.credentials)
    except Exception:  # noqa: BLE001 - AirflowNotFoundException and the secrets backends' own errors alike
        raise AirflowFailException(f"source.credentials: no Airflow connection {source.credentials!r}") from None
    if not conn.password:
        raise AirflowFailException(f"source.credentials: the connection {source.credentials!r} has no password (the token)")
    env = credentials_env(conn.login or "git", conn.password)
    mask_secret(conn.password)
    mask_secret(env["GIT_CONFIG_VALUE_0"].split()[-1])
    return functools.partial(run_git, env=env)
