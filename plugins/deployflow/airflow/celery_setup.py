"""What the Celery setup's Airflow processes import by name (deployflow.stack.celery sets the options).

``CONNECT_ARGS``: ``[database] sql_alchemy_connect_args`` on PostgreSQL. airflow.cfg names SQLite's
(a 60 s lock wait, ``timeout``), which psycopg would refuse as an unknown connection option.

``hostname``: ``[core] hostname_callable``. Airflow records it as a task instance's ``hostname``; two
workers on one machine (standing for two hosts) would both be that machine's FQDN, so each names itself
through ``DEPLOYFLOW_WORKER_HOSTNAME``; on real hosts leave the option at its default.
"""

from __future__ import annotations

import os
import socket

CONNECT_ARGS = {"connect_timeout": 10}


def hostname() -> str:
    """``$DEPLOYFLOW_WORKER_HOSTNAME``, else the machine's FQDN (Airflow's default)."""
    return os.environ.get("DEPLOYFLOW_WORKER_HOSTNAME") or socket.getfqdn()
