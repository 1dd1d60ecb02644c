"""Strategy by name, configured from the environment's catalog entry; an
unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.catalog import Environment
from deployflow.strategies.base import Strategy
from deployflow.strategies.bluegreen import BlueGreen
from deployflow.strategies.canary import Canary
from deployflow.strategies.rolling import Rolling


def strategy_for(name: str, environment: Environment) -> Strategy:
    builders = {
        "blue-green": lambda: BlueGreen(environment.blue_green),
        "canary": lambda: Canary(environment.canary, analysis=environment.analysis.enabled),
        # A Deployment replaces its own pods (maxSurge = batch size): rolling happens in place there.
        "rolling": lambda: Rolling(environment.rolling, in_place=environment.kubernetes is not None),
    }
    if name not in builders:
        raise ValueError(f"strategy {name!r} is not known; valid values are {', '.join(repr(n) for n in builders)}")
    return builders[name]()
