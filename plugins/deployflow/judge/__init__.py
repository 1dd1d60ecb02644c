"""The canary judge: is the canary worse than the baseline, metric by metric and overall?

- :func:`classify` judges a continuous metric (latency samples, per-interval
  values): guards first (no data, too few values, identical), then a shift
  (Mann-Whitney, Hodges-Lehmann), a tail and a spread check.
- :func:`classify_counts` judges an error rate as two proportions.
- :func:`score` turns the classifications into a release verdict: a 0-100
  score, "pass" / "marginal" / "fail", and the reasons; "nodata" (no score)
  when no metric had data.

Pure numpy/scipy: no Airflow, no I/O.
"""

from __future__ import annotations

from deployflow.judge.buckets import BucketedValues, histogram_quantile
from deployflow.judge.classification import DIRECTIONS, HIGH, LABELS, LOW, NODATA, PASS, Classification
from deployflow.judge.continuous import ContinuousOptions, classify
from deployflow.judge.counts import CountOptions, classify_counts, newcombe_interval, proportion_test
from deployflow.judge.scoring import NODATA_POLICIES, RESULT_NODATA, Group, ScoreOptions, Verdict, score
from deployflow.judge.shift import MannWhitney, Shift, hodges_lehmann, mann_whitney

__all__ = [
    "BucketedValues",
    "DIRECTIONS",
    "HIGH",
    "LABELS",
    "LOW",
    "NODATA",
    "NODATA_POLICIES",
    "PASS",
    "RESULT_NODATA",
    "Classification",
    "ContinuousOptions",
    "CountOptions",
    "Group",
    "MannWhitney",
    "ScoreOptions",
    "Shift",
    "Verdict",
    "classify",
    "classify_counts",
    "histogram_quantile",
    "hodges_lehmann",
    "mann_whitney",
    "newcombe_interval",
    "proportion_test",
    "score",
]
