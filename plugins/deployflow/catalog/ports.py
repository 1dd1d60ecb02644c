"""The ports the local stack itself listens on, defined once: an environment's front port (its HAProxy
proxy, on 127.0.0.1) must be none of them, or the proxy and the stack would fight over it.

Each entry says where the port is set; tests/unit/test_catalog_ports.py reads those places back, so
the list cannot drift from them.
"""

from __future__ import annotations

STACK_PORTS: dict[int, str] = {
    5000: "the registry's (deployflow.settings DEFAULT_REGISTRY, 127.0.0.1:5000)",
    8080: "the Airflow API server's (airflow.cfg [api] port)",
    8793: "Airflow's worker log server's (airflow.cfg [logging] worker_log_server_port)",
    8794: "Airflow's triggerer log server's (airflow.cfg [logging] trigger_log_server_port)",
    9090: "Prometheus' (deployflow.stack.containers LOCAL_PROMETHEUS_PORT)",
    9468: "the release metrics exporter's (deployflow.stack.containers LOCAL_EXPORTER_PORT)",
}
# The Docker platform gives each instance a free port from this range (platforms/docker.py DockerPlatform).
INSTANCE_PORTS = (20000, 20999)


def port_user(port: int) -> str | None:
    """Whose port ``port`` is on the local stack ("the registry's"), or None when nothing of the stack's."""
    if port in STACK_PORTS:
        return STACK_PORTS[port]
    low, high = INSTANCE_PORTS
    if low <= port <= high:
        return f"in the range the Docker platform's instances take theirs from ({low}-{high}, platforms/docker.py)"
    return None


def stack_ports_text() -> str:
    """The stack's ports, for an error message: '5000, 8080, ... and 20000-20999'."""
    low, high = INSTANCE_PORTS
    return ", ".join(str(p) for p in sorted(STACK_PORTS)) + f" and {low}-{high}"
