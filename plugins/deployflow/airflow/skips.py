"""The steps a release does without, decided by resolve from the request alone, before any of them would start.

A task that starts only to find it has nothing to do costs a task process (its start, its DAG file's parse, its
calls to Airflow's API) for no work: measured, a skipped analysis 6.0 s and a gate that asked for nothing 0.5 s
on the critical path. What the request already decides (the strategy, the environment's catalog, the approval
rules) resolve skips at once, through Airflow's scheduler, with the reason in resolve's result (key ``skipped``)
for the client and the Releases view. What only the deploy can tell (a first deploy has no old version to judge
the canary against, or to watch after) the task still decides when it runs.
"""

from __future__ import annotations

from typing import Any

from deployflow.airflow.governance import approval_needed
from deployflow.airflow.task_ids import ANALYSIS, APPROVE_DEPLOY, APPROVE_PROMOTE, LOAD
from deployflow.catalog import Environment, Service

# The key of resolve's result under which the decided skips are, by task id, with why.
DECIDED = "skipped"


def decided_skips(service: Service, resolved: dict[str, Any]) -> dict[str, str]:
    """The tasks of the release ``resolved`` asks for that have nothing to do, by task id, with why.

    :param service: the catalog entry.
    :param resolved: resolve's result: the request (environment, strategy) and its governance decision.
    """
    env = service.environments[resolved["environment"]]
    skips: dict[str, str] = {}
    if why := no_analysis(resolved.get("strategy"), env):
        skips[ANALYSIS] = why
    if why := no_load_rate(env):
        skips[LOAD] = why
    elif ANALYSIS in skips and not env.post_promotion.enabled:
        skips[LOAD] = (f"nothing to drive traffic for: no canary analysis ({skips[ANALYSIS]}), "
                       f"no post-promotion watch (off in {env.name})")
    for gate, position in ((APPROVE_DEPLOY, "deploy"), (APPROVE_PROMOTE, "promote")):
        if not approval_needed(service, resolved, position):
            skips[gate] = f"no approval asked for before {position} in {env.name}"
    return skips


def no_analysis(strategy: str | None, env: Environment) -> str | None:
    """Why a release with ``strategy`` has no canary analysis in ``env`` whatever it deploys; None: it may have one
    (the analysis task tells the rest: a first deploy has nothing to judge against)."""
    if strategy != "canary":
        return f"{strategy} has no canary step to judge"
    if not env.analysis.enabled:
        return f"analysis is off in {env.name}"
    return None


def no_load_rate(env: Environment) -> str | None:
    """Why ``env`` gets no synthetic traffic whatever is judged; None: it may."""
    return f"analysis.load_rate is 0 in {env.name}: no synthetic traffic" if env.analysis.load_rate <= 0 else None
