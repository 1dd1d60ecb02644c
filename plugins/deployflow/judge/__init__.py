"""The canary judge: is the canary worse than the baseline, metric by metric and overall?

- :func:`classify` judges a continuous metric (latency samples, per-interval
  values): guards first (no data, too few values, identical), then a shift
  (Mann-Whitney, Hodges-Lehmann), a tail and a spread check.
- :func:`classify_counts` judges an error rate as two proportions.
- :func:`score` turns the classifications into a release verdict: a 0-100
  score, "pass" / "marginal" / "fail", and the reasons.

Pure numpy/scipy: no Airflow, no I/O.
"""

from __future__ import annotations

import importlib

# Each name's module, imported on first use: the catalog reads DIRECTIONS and
# NODATA_POLICIES at import time and must not load numpy and scipy with them.
_MODULES = {
    **dict.fromkeys(("DIRECTIONS", "HIGH", "LABELS", "LOW", "NODATA", "PASS", "Classification"), "classification"),
    **dict.fromkeys(("ContinuousOptions", "classify"), "continuous"),
    **dict.fromkeys(("CountOptions", "classify_counts", "newcombe_interval", "proportion_test"), "counts"),
    **dict.fromkeys(("NODATA_POLICIES", "Group", "ScoreOptions", "Verdict", "score"), "scoring"),
    **dict.fromkeys(("MannWhitney", "Shift", "hodges_lehmann", "mann_whitney"), "shift"),
}

__all__ = sorted(_MODULES)


def __getattr__(name: str) -> object:
    if name not in _MODULES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODULES})
