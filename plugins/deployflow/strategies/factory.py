"""Strategy by name, configured from the environment's catalog entry; an
unknown name is an error that lists the valid ones."""

from __future__ import annotations

from deployflow.catalog import Environment
from deployflow.strategies.base import Strategy
from deployflow.strategies.bluegreen import BlueGreen
from deployflow.strategies.canary import Canary
from deployflow.strategies.rolling import Rolling


def strategy_for(name: str, environment: Environment, *, in_place_rolling: bool = False) -> Strategy:
    """:param in_place_rolling: the platform replaces instances in place (a Deployment), so rolling needs no second set."""
    builders = {
        "blue-green": lambda: BlueGreen(environment.blue_green),
        "canary": lambda: Canary(environment.canary, analysis=environment.analysis.enabled),
        "rolling": lambda: Rolling(environment.rolling, in_place=in_place_rolling),
    }
    if name not in builders:
        raise ValueError(f"strategy {name!r} is not known; valid values are {', '.join(repr(n) for n in builders)}")
    return builders[name]()
