"""The embedded default stack on one machine: images, the registry and Prometheus containers, Airflow's
processes and the release exporter, and their secrets.

    python -m deployflow.stack up   [--home .airflow] [--port 8080]
    python -m deployflow.stack down [--home .airflow] [--with-registry]
    python -m deployflow.stack images
    python -m deployflow.stack password [--home .airflow]   (prints the admin password: for a terminal, not a log)
    python -m deployflow.stack.celery up|down|password [--top .celery] [--port 27080]   (the scale-out setup)

Modules, by role: ``secrets`` (the stack's secrets, who may read which, private modes), ``processes`` (a
process of the stack: started in its own session, its PID in a file, stopped by it), ``containers`` (the
images, the registry and Prometheus), ``local`` (Airflow's processes and the release exporter),
``celery_services`` and ``celery`` (the Celery setup: PostgreSQL, Redis, workers and triggerers).

An outer layer: it starts Airflow as processes and never imports it, and nothing else in deployflow imports it.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]  # the repository (this file: plugins/deployflow/stack/__init__.py)
