"""What the judge says about one metric: a label, a sentence, and the numbers behind both."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from deployflow.errors import ConfigError, one_of

PASS, HIGH, LOW, NODATA = "pass", "high", "low", "nodata"
LABELS = (PASS, HIGH, LOW, NODATA)

# "increase": higher is worse (latency, errors); "decrease": lower is worse (throughput).
from deployflow.policies import DIRECTIONS  # noqa: E402 - defined once, beside the catalog

NAN = math.nan


@dataclass(frozen=True)
class Classification:
    """The verdict on one metric, canary against baseline.

    ``estimate`` is the shift canary - baseline (Hodges-Lehmann for samples, the
    difference of error rates for counts), ``ci_low``/``ci_high`` its confidence
    interval at ``confidence``, ``ratio`` canary / baseline of the medians (samples)
    or of the rates (counts), nan when the baseline's is 0 or there is no data.
    Samples read from histogram buckets: ``estimate`` and ``ratio`` compare the
    medians interpolated within buckets, and there is no interval (nan).
    ``p_value`` is the main test's (Mann-Whitney or the proportions test);
    ``flagged`` names the checks that found the canary worse: ``shift``, ``tail``,
    ``spread``, ``rate``.
    """

    label: str
    reason: str
    estimate: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    ratio: float = NAN
    p_value: float = NAN
    n_baseline: int = 0
    n_canary: int = 0
    metric: str = ""
    critical: bool = False
    direction: str = "increase"
    confidence: float = NAN
    flagged: tuple[str, ...] = ()
    tail_p_value: float = NAN
    spread_p_value: float = NAN

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ConfigError("label", one_of(self.label, LABELS))

    @property
    def passed(self) -> bool:
        return self.label == PASS

    def named(self, metric: str) -> Classification:
        """The same verdict, said of ``metric``."""
        return replace(self, metric=metric)


def check_direction(direction: str) -> str:
    if direction not in DIRECTIONS:
        raise ConfigError("direction", one_of(direction, DIRECTIONS))
    return direction


def worse_label(direction: str, side: str) -> str:
    """The label for a canary found worse on ``side`` ("up" or "down") of the baseline."""
    if direction == "decrease":
        return LOW
    if direction == "increase":
        return HIGH
    return HIGH if side == "up" else LOW


def num(value: float) -> str:
    """A number for a sentence: three significant digits, no exponent for everyday sizes."""
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0 or 1e-3 <= abs(value) < 1e6:
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return f"{value:.2e}"


def signed(value: float) -> str:
    text = num(value)
    return text if text.startswith(("-", "n/a")) else f"+{text}"


def percent(fraction: float, *, sign: bool = True) -> str:
    """0.123 -> "+12.3 %"; infinite or undefined fractions say so."""
    if fraction is None or math.isnan(fraction):
        return "n/a %"
    if math.isinf(fraction):
        return "+inf %" if fraction > 0 else "-inf %"
    return f"{fraction * 100:+.1f} %" if sign else f"{fraction * 100:.3g} %"


def p_text(p: float) -> str:
    return "p = n/a" if math.isnan(p) else (f"p = {p:.2g}" if p >= 1e-4 else f"p = {p:.1e}")


def relative(new: float, old: float) -> float:
    """(new - old) / |old|; +-inf when old is 0 and new is not, 0 when both are."""
    if old == 0:
        return 0.0 if new == 0 else math.copysign(math.inf, new)
    return (new - old) / abs(old)


def safe_ratio(new: float, old: float) -> float:
    return new / old if old != 0 and not math.isnan(old) else NAN
