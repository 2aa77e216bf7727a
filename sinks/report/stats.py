"""The report's statistics: estimates with their sample size and a 95 % interval, and a test of whether a
change between two periods is beyond noise.

- Shares (CSAT satisfied, negative share, a category's share): the Wilson score interval.
- NPS = 100 (p - d) from the multinomial shares of promoters p and detractors d: its variance is
  (p + d - (p - d)^2) / n, so the interval is NPS +- z * 100 * sqrt(that) (clipped to [-100, 100]).
- A change between two independent periods counts only when |a - b| > z * sqrt(se_a^2 + se_b^2), with z
  Bonferroni-corrected when several changes are tested together, and only when both periods have at
  least :data:`MIN_SAMPLE` observations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

#: Fewest observations behind a figure the report shows as a number (fewer: "not enough data").
MIN_SAMPLE = 30
CONFIDENCE = 0.95


def z_value(confidence: float = CONFIDENCE, tests: int = 1) -> float:
    """Two-sided critical value, Bonferroni-corrected for ``tests`` simultaneous comparisons."""
    alpha = (1.0 - confidence) / max(1, tests)
    return NormalDist().inv_cdf(1.0 - alpha / 2.0)


@dataclass(frozen=True)
class Estimate:
    """A figure with its sample size ``n``, standard error and 95 % interval; ``enough`` is False below
    :data:`MIN_SAMPLE`, and then the figure must not be shown as a number."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    se: float | None
    kind: str  # "nps" (points) or "share" (percent)

    @property
    def enough(self) -> bool:
        return self.value is not None and self.n >= MIN_SAMPLE

    def figure(self) -> str:
        """``+32`` / ``64%``, or ``not enough data``."""
        if not self.enough or self.value is None:
            return "not enough data"
        return f"{self.value:+.0f}" if self.kind == "nps" else f"{self.value:.0f}%"

    def interval(self) -> str:
        """``95% CI +25 to +39`` (empty without enough data)."""
        if not self.enough or self.low is None or self.high is None:
            return ""
        if self.kind == "nps":
            return f"95% CI {self.low:+.0f} to {self.high:+.0f}"
        return f"95% CI {self.low:.0f} to {self.high:.0f}%"

    def describe(self, unit: str = "responses") -> str:
        """``+32 (95% CI +25 to +39; n = 412 responses)`` or ``not enough data (n = 7 responses)``."""
        count = f"n = {self.n:,} {unit}"
        if not self.enough:
            return f"not enough data ({count}; needs {MIN_SAMPLE})"
        return f"{self.figure()} ({self.interval()}; {count})"


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """The share ``k / n`` in percent with its Wilson score interval."""
    if n <= 0:
        return Estimate(None, None, None, 0, None, "share")
    z = z_value(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    q = (k + 1) / (n + 2)  # the standard error of the change test, never 0 at 0 % or 100 %
    se = math.sqrt(q * (1 - q) / n) * 100
    return Estimate(100 * p, 100 * max(0.0, centre - half), 100 * min(1.0, centre + half), n, se, "share")


def nps(promoters: int, detractors: int, n: int, confidence: float = CONFIDENCE) -> Estimate:
    """NPS with the normal interval from the multinomial variance of the promoter and detractor shares."""
    if n <= 0:
        return Estimate(None, None, None, 0, None, "nps")
    p, d = promoters / n, detractors / n
    variance = max(p + d - (p - d) ** 2, 0.25 / n)  # never 0: 100 % promoters of 40 is not certainty
    se = 100 * math.sqrt(variance / n)
    value = 100 * (p - d)
    half = z_value(confidence) * se
    return Estimate(value, max(-100.0, value - half), min(100.0, value + half), n, se, "nps")


def changed(now: Estimate, before: Estimate, tests: int = 1) -> bool:
    """True when both periods have enough data and the difference is beyond noise (95 %, Bonferroni)."""
    if not (now.enough and before.enough) or now.se is None or before.se is None:
        return False
    assert now.value is not None and before.value is not None
    return abs(now.value - before.value) > z_value(tests=tests) * math.hypot(now.se, before.se)
