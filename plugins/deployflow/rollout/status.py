"""What an environment runs and what takes its traffic, as the platform and the router see it (the deployer's
``status`` and the release record's "live" line)."""

from __future__ import annotations

from typing import Any

from deployflow.configuration import config_version_of, image_version_of
from deployflow.platforms.base import BASELINE, COLOURS, Workload
from deployflow.routers.base import Traffic


def status(workload: Workload, traffic: Traffic, *, service: str, environment: str) -> dict[str, Any]:
    shares = traffic.weights()
    sets = {}
    for colour in (*COLOURS, BASELINE):
        found = workload.get(colour)
        if found.target is None and not found.instances:
            continue
        versions = sorted(found.versions)
        sets[colour] = {"versions": versions, "images": sorted({image_version_of(v) for v in versions}),
                        "configs": sorted({config_version_of(v) for v in versions} - {""}),  # configuration versions
                        "traffic_percent": shares.get(colour, 0), **found.detail}
    live = max(shares, key=shares.get) if any(shares.values()) else None
    return {"service": service, "environment": environment, "live": live, "sets": sets, "router": traffic.status()}
