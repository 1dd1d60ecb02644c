"""Getting two samples ready to compare: NaN policy, infinities, optional outlier removal.

A NaN is a missing measurement (a scrape gap, a failed probe); an infinity is a
measurement at the end of the scale (a timeout). So NaNs are dropped or end the
judging, while infinities stay as the most extreme observations.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from deployflow.errors import one_of

NAN_POLICIES = ("drop", "fail")
OUTLIER_METHODS = ("none", "tukey", "mad")

# Kayenta's IQR detector uses 3.0 ("far out" fences); 3.5 robust z is Iglewicz and Hoaglin's cut.
TUKEY_FACTOR = 3.0
MAD_CUT = 3.5
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class Sample:
    """One side's values after cleaning, with what was done to them (for the reason)."""

    values: np.ndarray
    nans: int = 0
    infinities: int = 0
    outliers: int = 0

    def __len__(self) -> int:
        return len(self.values)


def as_values(values: Iterable[float] | None) -> np.ndarray:
    """Any sequence of numbers (None counts as NaN) as a flat float array."""
    if values is None:
        return np.empty(0)
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float)
    return array.ravel()


def prepare(baseline: np.ndarray, canary: np.ndarray, outliers: str = "none") -> tuple[Sample, Sample]:
    """Drop NaNs, clip infinities to the pooled finite range, then remove outliers per side."""
    finite = np.concatenate([baseline[np.isfinite(baseline)], canary[np.isfinite(canary)]])
    low, high = (finite.min(), finite.max()) if len(finite) else (0.0, 0.0)
    return _prepare_side(baseline, low, high, outliers), _prepare_side(canary, low, high, outliers)


def _prepare_side(values: np.ndarray, low: float, high: float, outliers: str) -> Sample:
    nans = int(np.isnan(values).sum())
    kept = values[~np.isnan(values)]
    infinities = int(np.isinf(kept).sum())
    # Clipping keeps a timeout the largest value in the ranks while HL and quantiles stay finite.
    kept = np.clip(kept, low, high) if infinities else kept
    if outliers == "none" or len(kept) == 0:
        return Sample(kept, nans, infinities)
    mask = outlier_mask(kept, outliers)
    return Sample(kept[~mask], nans, infinities, int(mask.sum()))


def outlier_mask(values: np.ndarray, method: str) -> np.ndarray:
    """True for the values ``method`` ("tukey" or "mad") calls outliers."""
    median = np.median(values)
    if method == "tukey":
        q1, q3 = np.quantile(values, [0.25, 0.75])
        spread = TUKEY_FACTOR * (q3 - q1)
        return (values < q1 - spread) | (values > q3 + spread)
    if method == "mad":
        mad = MAD_TO_SIGMA * np.median(np.abs(values - median))
        if mad == 0:
            return np.zeros(len(values), dtype=bool)  # half the values are equal: nothing stands out
        return np.abs(values - median) / mad > MAD_CUT
    raise ValueError(f"outliers: {one_of(method, OUTLIER_METHODS)}")


def identical(baseline: np.ndarray, canary: np.ndarray) -> bool:
    """Same multiset of values, or one value repeated on both sides: nothing to test."""
    if len(baseline) == len(canary) and np.array_equal(np.sort(baseline), np.sort(canary)):
        return True
    pooled = np.concatenate([baseline, canary])
    return bool(pooled.min() == pooled.max())
