"""Latencies read back from a histogram: ordered buckets with known bounds, not continuous values.

``analysis.bucket_samples`` turns each bucket's count into that many values at
the bucket's midpoint (the +Inf bucket at its lower bound), so the values tie
everywhere and only three things can honestly be said of them:

- their order: which bucket a request fell in. Mann-Whitney with its tie
  correction is already the ordinal test over the buckets;
- the share of each side beyond a bucket boundary (the tail check's tied case,
  Fisher's exact test on the counts: exact under "no difference" whatever the ties);
- a quantile interpolated within its bucket, as Prometheus' ``histogram_quantile``
  does. That is how big a median shift is: Hodges-Lehmann on the midpoints
  rounds it to whole buckets, often to 0 when most pairs share a bucket.

:class:`BucketedValues` carries the bounds along with the values, so the judge
can name a boundary ("above the bucket bound 0.1") and interpolate; without
them it still sees the ties and tests the same counts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


class BucketedValues(list):
    """One value per request read from a histogram's buckets, and the buckets' upper bounds (``le``, +Inf included).

    A list of floats like any other sample, so every caller that only wants the
    values keeps working; :func:`common_bounds` reads the bounds back.
    """

    def __init__(self, values: Iterable[float] = (), bounds: Iterable[float] = ()) -> None:
        super().__init__(values)
        self.bounds = tuple(sorted(float(b) for b in bounds))


def common_bounds(baseline: object, canary: object) -> tuple[float, ...] | None:
    """The finite bucket bounds both sides were read with; None if either is not bucketed or they differ."""
    bounds = [side.bounds if isinstance(side, BucketedValues) else None for side in (baseline, canary)]
    if bounds[0] is None or bounds[1] is None:
        return None
    finite = [tuple(b for b in side if math.isfinite(b)) for side in bounds]
    # A canary with other buckets than the baseline's: midpoints of one set are not the other's; judge on ties only.
    return finite[0] if finite[0] == finite[1] and finite[0] else None


def bucket_of(values: np.ndarray, bounds: tuple[float, ...]) -> np.ndarray:
    """The index of each value's bucket: i for (bounds[i-1], bounds[i]], len(bounds) for the +Inf bucket.

    A midpoint lies strictly inside its bucket; the +Inf bucket's value is the
    largest finite bound itself, which ``side="right"`` puts above it.
    """
    return np.searchsorted(np.asarray(bounds), values, side="right")


def histogram_quantile(values: np.ndarray, q: float, bounds: tuple[float, ...]) -> float:
    """Prometheus' ``histogram_quantile(q)``: linear within the bucket holding rank q * n.

    The first bucket starts at 0; a rank in the +Inf bucket answers the largest
    finite bound (nothing is known beyond it).
    """
    if not len(values):
        return math.nan
    counts = np.bincount(bucket_of(values, bounds), minlength=len(bounds) + 1)
    cumulative = np.cumsum(counts)
    rank = q * len(values)
    index = int(np.searchsorted(cumulative, rank, side="left"))
    if index >= len(bounds):
        return float(bounds[-1])
    lower = float(bounds[index - 1]) if index > 0 else 0.0
    below = float(cumulative[index] - counts[index])
    return lower + (float(bounds[index]) - lower) * (rank - below) / float(counts[index])


def quantile(values: np.ndarray, q: float, bounds: tuple[float, ...] | None) -> float:
    """The q-quantile: interpolated within buckets when the bounds are known, else numpy's linear one."""
    return histogram_quantile(values, q, bounds) if bounds else float(np.quantile(values, q))


def lower_bound(value: float, bounds: tuple[float, ...]) -> float:
    """The lower bound of the bucket ``value`` was read from (0 for the first)."""
    index = int(bucket_of(np.asarray([value]), bounds)[0])
    return float(bounds[index - 1]) if index > 0 else 0.0


def upper_bound(value: float, bounds: tuple[float, ...]) -> float:
    """The upper bound (``le``) of the bucket ``value`` was read from (inf for the +Inf bucket)."""
    index = int(bucket_of(np.asarray([value]), bounds)[0])
    return float(bounds[index]) if index < len(bounds) else math.inf
