"""The sentences of classify(): every verdict with its numbers, readable by the person who rolls back.

For values read from histogram buckets (``MedianMove.bucketed``) the medians are
the interpolated ones (``histogram_quantile(0.5)``) and a tail is named by its
bucket boundary (``le``) and the share of each side beyond it.
"""

from __future__ import annotations

import math

import numpy as np

from deployflow.judge.buckets import lower_bound, upper_bound
from deployflow.judge.classification import num, p_text, percent, safe_ratio, signed
from deployflow.judge.samples import Sample
from deployflow.judge.shift import MedianMove, Shift
from deployflow.judge.spread import SpreadCheck, TailCheck

WITHIN_BUCKETS = "read within the histogram's buckets, as histogram_quantile does"


def shift_sentence(move: MedianMove, ratio: float, p: float, alpha: float, tolerance: float) -> str:
    tail = f"beyond the {percent(tolerance, sign=False)} tolerance; Mann-Whitney {p_text(p)} < {num(alpha)}"
    if move.bucketed:
        return (f"the canary's median moved: p50 {num(move.baseline_median)} -> {num(move.canary_median)} "
                f"({percent(move.change)}, ratio {num(ratio)}; {WITHIN_BUCKETS}), {tail}")
    return (f"the canary's median moved: shift {signed(move.shift.estimate)} ({percent(move.change)} of the baseline "
            f"median {num(move.baseline_median)}, ratio {num(ratio)}; {interval(move.shift)}), {tail}")


def tail_sentence(tail: TailCheck, alpha: float, bounds: tuple[float, ...] | None) -> str:
    which = "upper" if tail.side == "up" else "lower"
    name = f"p{tail.quantile * 100:.3g}"
    fisher = f"(Fisher {p_text(tail.p_value)} < {num(alpha)})"
    if tail.tied:
        quantiles = f"canary {name} {num(tail.canary_quantile)} vs baseline {num(tail.baseline_quantile)}"
        return (f"the {which} tail is heavier: {percent(tail.canary_share, sign=False)} of the canary's values vs "
                f"{percent(tail.baseline_share, sign=False)} of the baseline's {where(tail, bounds)} "
                f"({tail.canary_beyond} vs {tail.baseline_beyond}{times(tail.canary_share, tail.baseline_share)}); "
                f"{quantiles}{'' if not bounds else ' (within buckets)'} {fisher}")
    beyond = "above" if tail.side == "up" else "below"
    return (f"the {which} tail is heavier: canary {name} {num(tail.canary_quantile)} vs baseline "
            f"{num(tail.baseline_quantile)} ({percent(tail.change)} worse); {tail.canary_beyond} canary vs "
            f"{tail.baseline_beyond} baseline values {beyond} the pooled {name} {num(tail.threshold)} {fisher}")


def where(tail: TailCheck, bounds: tuple[float, ...] | None) -> str:
    """Which values a tied tail holds: by bucket boundary when the bounds are known, else by value."""
    if bounds:  # the threshold's bucket and those beyond it
        if tail.side == "up":
            return f"in the buckets above le={num(lower_bound(tail.threshold, bounds))}"
        return f"in the buckets up to le={num(upper_bound(tail.threshold, bounds))}"
    return f"{'at or above' if tail.side == 'up' else 'at or below'} {num(tail.threshold)} (tied values)"


def times(new: float, old: float) -> str:
    ratio = safe_ratio(new, old)
    return "" if math.isnan(ratio) else f", x{num(ratio)}"


def spread_sentence(spread: SpreadCheck, alpha: float) -> str:
    return (f"the spread is wider: mean absolute deviation from the median {num(spread.canary_spread)} vs "
            f"{num(spread.baseline_spread)} (x{num(safe_ratio(spread.canary_spread, spread.baseline_spread))}; "
            f"Brown-Forsythe {p_text(spread.p_value)} < {num(alpha)})")


def median_held(move: MedianMove, ratio: float, p: float) -> str:
    if move.bucketed:
        return (f"the median held (p50 {num(move.baseline_median)} -> {num(move.canary_median)} within buckets, "
                f"ratio {num(ratio)}, Mann-Whitney {p_text(p)}) but")
    return (f"the median held (ratio {num(ratio)}, shift {signed(move.shift.estimate)}, {interval(move.shift)}, "
            f"Mann-Whitney {p_text(p)}) but")


def pass_sentence(move: MedianMove, ratio: float, p: float, tails: list[TailCheck], spread: SpreadCheck,
                  tolerance: float, bounds: tuple[float, ...] | None) -> str:
    if move.bucketed:
        centre = (f"p50 {num(move.baseline_median)} -> {num(move.canary_median)} ({percent(move.change)}, ratio "
                  f"{num(ratio)}, within buckets; Mann-Whitney {p_text(p)})")
    else:
        centre = (f"shift {signed(move.shift.estimate)} ({percent(move.change)}, ratio {num(ratio)}; "
                  f"{interval(move.shift)}; Mann-Whitney {p_text(p)})")
    return (f"no regression beyond the {percent(tolerance, sign=False)} tolerance: {centre}, "
            f"{', '.join(tail_text(t, bounds) for t in tails)}, spread {percent(spread.change)} "
            f"(Brown-Forsythe {p_text(spread.p_value)})")


def tail_text(tail: TailCheck, bounds: tuple[float, ...] | None) -> str:
    name = f"p{tail.quantile * 100:.3g} {percent(tail.moved)}"
    if not tail.tied:
        return f"{name} (Fisher {p_text(tail.p_value)})"
    return (f"{name}, {tail.canary_beyond} canary vs {tail.baseline_beyond} baseline values {where(tail, bounds)} "
            f"(Fisher {p_text(tail.p_value)})")


def interval(shift: Shift) -> str:
    return f"{shift.confidence * 100:.3g} % CI {signed(shift.ci_low)} to {signed(shift.ci_high)}"


def nan_reason(baseline: np.ndarray, canary: np.ndarray) -> str:
    return (f"NaN values and nan_policy 'fail': baseline has {int(np.isnan(baseline).sum())} NaN of {len(baseline)}, "
            f"canary {int(np.isnan(canary).sum())} of {len(canary)}")


def cleaning_notes(b: Sample, c: Sample) -> str:
    notes = []
    for what, field in (("NaN values dropped", "nans"), ("infinite values clipped", "infinities"),
                        ("outliers removed", "outliers")):
        counts = getattr(b, field), getattr(c, field)
        if any(counts):
            notes.append(f"{what}: baseline {counts[0]}, canary {counts[1]}")
    return "" if not notes else " (" + "; ".join(notes) + ")"

