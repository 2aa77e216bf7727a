"""The detector: statistical process control on closed signal windows (pure, no I/O).

Each closed window of a scope is compared with that scope's own baseline:

* **Baseline** - earlier judged windows of the same scope. Windows shorter than a day use the
  same time of week (once ``seasonal_min`` of them exist, i.e. after 7 weeks) or else the same
  time of day (after 7 days: the cold start of hourly signals; nights and days are never mixed),
  up to ``baseline_windows`` of them. Daily windows use the same weekday (after 7 weeks), else a
  rolling run of ``4 x baseline_windows`` windows less the latest ``baseline_windows / 2`` (a guard
  band, so an unflagged shift does not leak into its own baseline), once ``cold_start`` exist.
  Windows that were out of control are left out, unless they are most of the candidates: then the
  shift has lasted long enough to be the new normal and only they form the baseline ("adapted").
* **Standardizing** - ``z = direction * (x - expected) / sigma``. Proportions are proportions,
  judged on the arcsine scale (variance ``1/4n``: binomial, and far less skewed for small ``n``)
  with the baseline's own uncertainty added (``1/n + 1/N``, ``N`` the baseline's responses);
  means use the pooled within-window variance; NPS the multinomial variance of promoters minus
  detractors; volume is Poisson. ``phi >= 1`` is Laney's over-dispersion factor (moving range of
  recent standardized deviations), so real day-to-day wobble does not become false alarms, and a
  per-signal floor on ``sigma`` ignores shifts too small to matter whatever the volume.
* **Charts** - a Shewhart limit (``z > shewhart``) for sudden jumps and a one-sided EWMA
  (``e = max(0, lambda z + (1 - lambda) e_prev)``, alarm above ``ewma * sqrt(lambda / (2 - lambda))``,
  widened for a rolling baseline whose error does not average out) for small persistent shifts.
  Only deteriorations alarm (negative share up; sentiment, NPS, CSAT down; volume up).
* **Minimum sample** - a window with fewer than ``min_sample`` responses is never judged by these
  charts; the count chart of :mod:`sinks.alerts.cusum` judges the negative share at any volume.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from sinks.alerts.history import Detection, Entry, History, WindowStats

#: what other modules import from here (the window, verdict and history types live in :mod:`sinks.alerts.history`)
__all__ = ["DAY", "SIGNALS", "WEEK", "Detection", "DetectorConfig", "Entry", "History", "WindowStats", "evaluate",
           "evaluate_all"]

DAY = 86400
WEEK = 7 * DAY
#: The fewest recent judged windows the over-dispersion factor is estimated from.
PHI_MIN = 20
#: How much of a rolling baseline's error carries from one window to the next (EWMA limit).
RHO = 1.0
#: A rolling (non-seasonal) baseline spans this many times ``baseline_windows``.
RECENT_FACTOR = 4
#: Monday 1970-01-05 00:00 UTC, so time-of-week slots start on Mondays.
_WEEK_ORIGIN = 4 * DAY




@dataclass(frozen=True)
class Baseline:
    expected: float
    unit_var: float  # variance of one response (or of one window's count, for volume)
    responses: int   # responses behind the estimate (windows, for volume)


def _proportion(base: list[WindowStats]) -> Baseline:
    n = sum(w.sentiment_n for w in base)
    p = (sum(w.negative for w in base) + 0.5) / (n + 1)  # never exactly 0 or 1
    return Baseline(p, 0.25, n)  # variance of one response on the arcsine scale


def _arcsine(x: float) -> float:
    """Variance-stabilizing for proportions: Var(asin(sqrt(k/n))) ~ 1/(4n), and far less skewed."""
    return math.asin(math.sqrt(min(1.0, max(0.0, x))))


def _arcsine_slope(p: float) -> float:
    return 1 / (2 * math.sqrt(max(p * (1 - p), 1e-9)))


def _mean(n_of: Callable[[WindowStats], int], mean_of: Callable[[WindowStats], float | None],
          std_of: Callable[[WindowStats], float | None]) -> Callable[[list[WindowStats]], Baseline]:
    def baseline(base: list[WindowStats]) -> Baseline:
        n = sum(n_of(w) for w in base)
        mean = sum(n_of(w) * (mean_of(w) or 0.0) for w in base) / n
        second = sum(n_of(w) * ((std_of(w) or 0.0) ** 2 + (mean_of(w) or 0.0) ** 2) for w in base) / n
        return Baseline(mean, max(second - mean * mean, 1e-6), n)

    return baseline


def _nps(base: list[WindowStats]) -> Baseline:
    n = sum(w.nps_responses for w in base)
    pp = (sum(w.promoters for w in base) + 0.5) / (n + 1)
    pd = (sum(w.detractors for w in base) + 0.5) / (n + 1)
    return Baseline(100 * (pp - pd), 1e4 * max(pp + pd - (pp - pd) ** 2, 1e-6), n)


def _volume(base: list[WindowStats]) -> Baseline:
    mean = sum(w.volume for w in base) / len(base)
    return Baseline(mean, max(mean, 1.0), len(base))


@dataclass(frozen=True)
class SignalDef:
    """How one signal is read from a window and how its baseline and spread are estimated."""

    name: str
    label: str
    direction: int  # +1: a rise is bad; -1: a fall is bad
    sample: Callable[[WindowStats], int]
    value: Callable[[WindowStats], float | None]
    baseline: Callable[[list[WindowStats]], Baseline]
    sigma_floor: float
    per_response: bool = True  # False: the spread of a whole window's value (volume, Poisson)
    transform: Callable[[float], float] | None = None  # the scale z is computed on
    slope: Callable[[float], float] | None = None  # d transform / dx, to carry the floor across

    def scale(self, x: float) -> float:
        return self.transform(x) if self.transform else x

    def sigma(self, b: Baseline, n: int) -> float:
        if self.per_response:
            raw = math.sqrt(b.unit_var * (1 / max(n, 1) + 1 / max(b.responses, 1)))
        else:
            raw = math.sqrt(b.unit_var * (1 + 1 / max(b.responses, 1)))
        return raw

    def baseline_share(self, b: Baseline, n: int) -> float:
        """The part of sigma^2 that is the baseline's estimation error (not the window's noise)."""
        if self.per_response:
            window, base = 1 / max(n, 1), 1 / max(b.responses, 1)
        else:
            window, base = 1.0, 1 / max(b.responses, 1)
        return base / (window + base)

    def spread_one(self, b: Baseline, w: WindowStats) -> float:
        """Spread of one baseline window around the baseline (for the over-dispersion factor)."""
        return math.sqrt(b.unit_var / max(self.sample(w), 1)) if self.per_response else math.sqrt(b.unit_var)


SIGNALS: dict[str, SignalDef] = {
    "negative_share": SignalDef(
        "negative_share", "Share of negative feedback", +1, lambda w: w.sentiment_n,
        lambda w: w.negative / w.sentiment_n if w.sentiment_n else None, _proportion, sigma_floor=0.01,
        transform=_arcsine, slope=_arcsine_slope),
    "mean_sentiment": SignalDef(
        "mean_sentiment", "Mean sentiment", -1, lambda w: w.sentiment_n, lambda w: w.sentiment_mean,
        _mean(lambda w: w.sentiment_n, lambda w: w.sentiment_mean, lambda w: w.sentiment_std), sigma_floor=0.01),
    "nps": SignalDef(
        "nps", "NPS", -1, lambda w: w.nps_responses,
        lambda w: 100.0 * (w.promoters - w.detractors) / w.nps_responses if w.nps_responses else None,
        _nps, sigma_floor=1.0),
    "csat": SignalDef(
        "csat", "Mean CSAT", -1, lambda w: w.csat_responses, lambda w: w.csat_mean,
        _mean(lambda w: w.csat_responses, lambda w: w.csat_mean, lambda w: w.csat_std), sigma_floor=0.02),
    "volume": SignalDef(
        "volume", "Feedback volume", +1, lambda w: w.volume, lambda w: float(w.volume), _volume,
        sigma_floor=1.0, per_response=False),
}


@dataclass(frozen=True)
class Limits:
    """Control limits in standard deviations: Shewhart, EWMA (L), and the critical level."""

    shewhart: float
    ewma: float
    critical: float


#: Sensitivity presets; ``normal`` is the default (false-alarm figures: README, ``feedback bench``).
SENSITIVITY: dict[str, Limits] = {
    "low": Limits(shewhart=4.5, ewma=4.0, critical=6.0),
    "normal": Limits(shewhart=4.0, ewma=3.6, critical=5.0),
    "high": Limits(shewhart=3.5, ewma=3.0, critical=4.5),
}
#: Signals judged unless configured otherwise (volume swings with campaigns: off by default).
DEFAULT_SENSITIVITY = {"negative_share": "normal", "mean_sentiment": "normal", "nps": "normal",
                       "csat": "normal", "volume": "off"}


@dataclass(frozen=True)
class DetectorConfig:
    """Detector parameters; ``sensitivity`` maps a signal to off|low|normal|high."""

    min_sample: int = 30
    cold_start: int = 14
    baseline_windows: int = 14
    seasonal_min: int = 7
    ewma_lambda: float = 0.1
    max_overdispersion: float = 3.0
    sensitivity: Mapping[str, str] = field(default_factory=dict)

    def limits(self, signal: str) -> Limits | None:
        level = self.sensitivity.get(signal, DEFAULT_SENSITIVITY.get(signal, "normal"))
        return None if level == "off" else SENSITIVITY[level]

    def enabled(self) -> list[str]:
        return [s for s in SIGNALS if self.limits(s) is not None]

    @property
    def ewma_factor(self) -> float:
        return math.sqrt(self.ewma_lambda / (2 - self.ewma_lambda))




def _slots(start: float, period: int, lookback: int) -> Iterable[float]:
    return (start - k * period for k in range(1, lookback + 1))


def select_baseline(sig: SignalDef, current: WindowStats, history: History,
                    cfg: DetectorConfig) -> tuple[list[WindowStats], str] | None:
    """The baseline windows for ``current`` and their kind, or None during the cold start."""

    def collect(candidates: Iterable[float], size: int) -> tuple[list[WindowStats], bool]:
        picked: list[tuple[WindowStats, bool]] = []
        for start in candidates:
            e = history.items.get(start)
            if e is None or sig.sample(e.stats) < cfg.min_sample or sig.value(e.stats) is None:
                continue
            picked.append((e.stats, e.detection.get(sig.name, {}).get("state") == "out"))
            if len(picked) >= size:
                break
        outs = sum(o for _, o in picked)
        if outs * 2 > len(picked):  # out of control for most of the baseline: that is the new normal
            return [s for s, o in picked if o], True
        return [s for s, o in picked if not o], False

    bw = cfg.baseline_windows
    kinds: list[tuple[str, Iterable[float], int, int]] = []
    if current.seconds < DAY:
        kinds.append(("time_of_week", _slots(current.start, WEEK, 2 * bw), cfg.seasonal_min, bw))
        kinds.append(("time_of_day", _slots(current.start, DAY, 2 * bw), cfg.seasonal_min, bw))
    elif current.seconds == DAY:
        kinds.append(("day_of_week", _slots(current.start, WEEK, 2 * bw), cfg.seasonal_min, bw))
    if current.seconds >= DAY:
        # Without a time of day to match, a longer run of windows, less the latest few (a guard
        # band, so a shift the charts have not flagged yet does not leak into its own baseline).
        # Windows shorter than a day are never compared across times of day: feedback differs
        # between night and day, so they wait for a week of history instead.
        guard, size = bw // 2, RECENT_FACTOR * bw
        earlier = [s for s in history.order[-(2 * size + guard):] if s < current.start]
        kinds.append(("recent", reversed(earlier[:-guard] if guard else earlier), cfg.cold_start, size))
    for kind, candidates, needed, size in kinds:
        base, adapted = collect(candidates, size)
        if len(base) >= needed:
            return base, kind + ("+adapted" if adapted else "")
    return None


def _moving_range_sigma(zs: list[float]) -> float:
    return sum(abs(a - c) for a, c in zip(zs[1:], zs[:-1], strict=True)) / (len(zs) - 1) / 1.128


def _overdispersion(sig: SignalDef, b: Baseline, base: list[WindowStats], history: History,
                    cfg: DetectorConfig) -> float:
    """Laney's phi (at least 1): the real spread of standardized deviations, by moving range.

    Estimated from the scope's recent judged windows' unadjusted z-scores when there are enough of
    them (so it also absorbs the baseline's own error and any seasonality it misses), else from the
    baseline windows' z-scores around the baseline.
    """
    recent = history.raw_scores(sig.name)
    if len(recent) >= PHI_MIN:
        return min(cfg.max_overdispersion, max(1.0, _moving_range_sigma(recent)))
    if len(base) < 3:
        return 1.0
    ordered = sorted(base, key=lambda w: w.start)
    zs = [(sig.scale(sig.value(w) or 0.0) - sig.scale(b.expected)) / sig.spread_one(b, w) for w in ordered]
    return min(cfg.max_overdispersion, max(1.0, _moving_range_sigma(zs)))


def evaluate(signal: str, current: WindowStats, history: History, cfg: DetectorConfig) -> Detection:
    """Judge one signal of one closed window against the scope's history (which excludes it)."""
    sig = SIGNALS[signal]
    prev = history.ewma(signal)
    n = sig.sample(current)
    x = sig.value(current)
    limits = cfg.limits(signal)
    if limits is None:
        return Detection(signal, "off", value=x, ewma=prev, sample_size=n)
    if x is None or n < cfg.min_sample:
        return Detection(signal, "low_volume", value=x, ewma=prev, sample_size=n)
    chosen = select_baseline(sig, current, history, cfg)
    if chosen is None:
        return Detection(signal, "cold_start", value=x, ewma=prev, sample_size=n)
    base, kind = chosen
    b = sig.baseline(base)
    phi = _overdispersion(sig, b, base, history, cfg)
    slope = sig.slope(b.expected) if sig.slope else 1.0
    deviation = sig.direction * (sig.scale(x) - sig.scale(b.expected))
    z_raw = deviation / sig.sigma(b, n)
    sigma_scaled = max(phi * sig.sigma(b, n), sig.sigma_floor * slope)
    z = deviation / sigma_scaled
    sigma = sigma_scaled / slope  # reported on the signal's own scale
    lam = cfg.ewma_lambda
    # Share of z's variance that is the baseline's own error. A rolling "recent" baseline is nearly
    # the same for consecutive windows, so that error does not average out in the EWMA; seasonal
    # baselines of consecutive windows are disjoint, so it does.
    base_share = sig.baseline_share(b, n)
    rho = RHO if kind.startswith("recent") else 0.0
    limit = limits.ewma * math.sqrt(lam / (2 - lam) * (1 - rho * base_share) + rho * base_share)
    e = min(2 * limit, max(0.0, lam * z + (1 - lam) * prev))  # one-sided; capped so recovery shows
    out = z > limits.shewhart or e > limit
    severity = ("critical" if z >= limits.critical else "warning") if out else None
    rule = ("shewhart" if z > limits.shewhart else "ewma") if out else None
    return Detection(signal, "out" if out else "in", value=x, expected=b.expected, sigma=sigma, z=z, z_raw=z_raw,
                     phi=phi, ewma=e, rule=rule,
                     ewma_limit=limit, severity=severity, baseline=kind, baseline_windows=len(base),
                     sample_size=n)


def evaluate_all(current: WindowStats, history: History, cfg: DetectorConfig) -> dict[str, Detection]:
    """Every signal of one window (disabled ones as ``off``), keyed by signal name."""
    return {s: evaluate(s, current, history, cfg) for s in SIGNALS}
