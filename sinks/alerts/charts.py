"""Count charts for the score signals (NPS, CSAT, mean sentiment): a CUSUM on the per-response scores.

The Shewhart and EWMA charts of :mod:`sinks.alerts.detector` judge a window only when it holds
``min_sample`` scored responses. This chart judges every window, whatever its size, from the
window's sufficient statistics (responses ``n``, sum and sum of squares of the per-response scores:
the sentiment polarity in [-1, 1], the CSAT score in [1, 5], or the NPS score as -100 for a
detractor, 0 for a passive, +100 for a promoter):

* **Baseline** ``mu0`` - the pooled mean score of the scope's windows of the last ``baseline_days``
  days, leaving out windows that were out of control and the current run (as the negative share's
  chart of :mod:`sinks.alerts.cusum` does: out-of-control windows become the baseline once they are
  most of the span). ``sigma`` is the pooled per-response standard deviation, ``phi >= 1`` the
  windows' Pearson dispersion (extra wobble from window to window). ``mu0`` is moved one standard
  error towards the bad side, so a baseline drawn from few responses errs on the quiet side. Fewer
  than ``min_baseline`` responses or less than ``min_span_days`` days of history: cold start.
* **Statistic** - a one-sided Gaussian CUSUM in log-likelihood units for a fall of ``delta``
  (the signal's smallest shift worth an alert): a window with ``n`` responses and score sum ``s``
  adds ``LLR = delta (n mu0 - s - n delta / 2) / sigma^2`` (divided by ``phi``); ``S = max(0, S + LLR)``,
  capped at ``cap x h``. Out of control while ``S > h``, with ``h`` by sensitivity level as for the
  negative share. Per response the evidence grows by ``delta (shift - delta / 2) / sigma^2``, so the
  delay is counted in responses and follows the scope's volume.

Measured false alarms and delays: ``docs/alerts.md`` (``make alert-eval``).
"""

from __future__ import annotations

import bisect
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from sinks.alerts.history import Detection, History, WindowStats

DAY = 86400
#: Per window: responses, sum of scores, sum of squared scores.
Sums = tuple[float, float, float]


def _moments(n: int, mean: float | None, std: float | None) -> Sums:
    if not n or mean is None:
        return (0.0, 0.0, 0.0)
    return (float(n), n * mean, n * ((std or 0.0) ** 2 + mean * mean))


def _nps_sums(w: WindowStats) -> Sums:
    return (float(w.nps_responses), 100.0 * (w.promoters - w.detractors), 1e4 * (w.promoters + w.detractors))


@dataclass(frozen=True)
class ScoreChart:
    """One score signal: how its per-response sums are read, and the smallest fall worth an alert."""

    signal: str
    sums: Callable[[WindowStats], Sums]
    delta: float
    min_sigma: float


#: The score signals; ``delta`` is in the signal's own unit (polarity, CSAT points, NPS points).
CHARTS: dict[str, ScoreChart] = {
    "mean_sentiment": ScoreChart("mean_sentiment", lambda w: _moments(w.sentiment_n, w.sentiment_mean,
                                                                       w.sentiment_std), 0.10, 0.05),
    "csat": ScoreChart("csat", lambda w: _moments(w.csat_responses, w.csat_mean, w.csat_std), 0.25, 0.1),
    "nps": ScoreChart("nps", _nps_sums, 15.0, 5.0),
}


@dataclass(frozen=True)
class ChartConfig:
    """Parameters shared by the score charts."""

    min_baseline: int = 200
    min_span_days: float = 3.0
    baseline_days: float = 28.0
    cap: float = 1.5
    max_dispersion: float = 3.0
    shift_sd: float = 0.33  # the fall a chart is tuned for: at least this many per-response standard deviations


class Prefix:
    """Running sums over a history's windows for one signal (in-control and out-of-control apart),
    so a baseline over any span costs O(log n). ``add`` gives a window's figures to sum."""

    def __init__(self, signal: str, add: Callable[[WindowStats], tuple[float, ...]], width: int) -> None:
        self.signal, self.add, self.width = signal, add, width
        self.starts: list[float] = []
        self.cum: tuple[list[list[float]], list[list[float]]] = ([[0.0] * width], [[0.0] * width])

    def sync(self, hist: History) -> None:
        last = self.starts[-1] if self.starts else -math.inf
        zero = [0.0] * self.width
        for start in hist.order[bisect.bisect_right(hist.order, last):]:
            e = hist.items[start]
            out = e.detection.get(self.signal, {}).get("state") == "out"
            add = self.add(e.stats)
            for kind in (0, 1):
                row = self.cum[kind][-1]
                inc = add if kind == out else zero
                self.cum[kind].append([a + b for a, b in zip(row, inc, strict=True)])
            self.starts.append(start)

    def sums(self, kind: int, lo: float, hi: float) -> list[float]:
        """The summed figures of one kind (0: in control, 1: out) of the windows with ``lo <= start < hi``."""
        a, b = bisect.bisect_left(self.starts, lo), bisect.bisect_left(self.starts, hi)
        return [y - z for y, z in zip(self.cum[kind][b], self.cum[kind][a], strict=True)]

    def first_since(self, since: float) -> float | None:
        i = bisect.bisect_left(self.starts, since)
        return self.starts[i] if i < len(self.starts) else None


_PREFIXES: weakref.WeakKeyDictionary[History, dict[str, Prefix]] = weakref.WeakKeyDictionary()


def prefix(hist: History, signal: str, add: Callable[[WindowStats], tuple[float, ...]], width: int) -> Prefix:
    """The history's running sums for ``signal``, brought up to date (rebuilt now and then, so trimmed
    windows are let go)."""
    per = _PREFIXES.setdefault(hist, {})
    pre = per.get(signal)
    if pre is None or (hist.order and pre.starts and hist.order[0] > pre.starts[0] + 60 * DAY):
        pre = per[signal] = Prefix(signal, add, width)
    pre.sync(hist)
    return pre


def window_span(pre: Prefix, hist: History, signal: str, current: WindowStats,
                baseline_days: float) -> tuple[list[float], float | None]:
    """The baseline's summed figures (the current run and out-of-control windows left out, unless those
    are most of the span: then they are the new normal) and the first window's start in the span."""
    since = current.start - baseline_days * DAY
    run = hist.carry(signal).get("run_start")
    inside, outs = pre.sums(0, since, current.start), pre.sums(1, since, current.start)
    if outs[0] * 2 > outs[0] + inside[0]:
        return outs, pre.first_since(since)
    return pre.sums(0, since, min(current.start, float(run) if run is not None else math.inf)), pre.first_since(since)


@dataclass(frozen=True)
class ScoreBaseline:
    mu0: float
    sigma: float
    phi: float
    responses: int
    windows: int


def _with_window(chart: ScoreChart) -> Callable[[WindowStats], tuple[float, ...]]:
    def add(w: WindowStats) -> tuple[float, ...]:
        n, s, q = chart.sums(w)
        return (1.0 if n else 0.0, n, s, q, s * s / n if n else 0.0)

    return add


def score_baseline(chart: ScoreChart, current: WindowStats, hist: History, cfg: ChartConfig) -> ScoreBaseline | None:
    pre = prefix(hist, chart.signal, _with_window(chart), 5)
    (k, n, s, q, s2n), first = window_span(pre, hist, chart.signal, current, cfg.baseline_days)
    if n < cfg.min_baseline or first is None or current.start - first < cfg.min_span_days * DAY:
        return None
    mu = s / n
    var = max(chart.min_sigma ** 2, q / n - mu * mu)
    chi2 = (s2n - 2 * mu * s + mu * mu * n) / var  # sum over windows of n_i (mean_i - mu)^2 / sigma^2
    phi = min(cfg.max_dispersion, max(1.0, chi2 / max(1.0, k - 1)))
    mu0 = mu - math.sqrt(phi * var / n)  # one standard error towards the bad side (a fall)
    return ScoreBaseline(mu0, math.sqrt(var), phi, int(n), int(k))


def score_step(signal: str, current: WindowStats, hist: History, h: float,
               cfg: ChartConfig | None = None) -> Detection:
    """The score chart's verdict on one window of the scope (the history excludes it)."""
    cfg = cfg or ChartConfig()
    chart = CHARTS[signal]
    n, s, _ = chart.sums(current)
    value = s / n if n else None
    b = score_baseline(chart, current, hist, cfg)
    if b is None:
        return Detection(signal, "cold_start", value=value, sample_size=int(n), rule="cusum")
    prev = hist.carry(signal)
    s_prev = float(prev.get("cusum") or 0.0)
    d = max(chart.delta, cfg.shift_sd * b.sigma)
    llr = d * (n * b.mu0 - s - n * d / 2) / (b.sigma ** 2) / b.phi
    stat = min(cfg.cap * h, max(0.0, s_prev + llr))
    if stat <= 0.0:
        run_start, run_n, run_sum = None, 0, 0.0
    elif s_prev <= 0.0 or prev.get("run_start") is None:
        run_start, run_n, run_sum = current.start, int(n), s
    else:
        run_start = float(prev["run_start"])
        run_n, run_sum = int(prev.get("run_n") or 0) + int(n), float(prev.get("run_sum") or 0.0) + s
    out = stat > h
    return Detection(signal, "out" if out else "in", value=value, expected=b.mu0, phi=b.phi,
                     severity=("critical" if stat >= cfg.cap * h else "warning") if out else None,
                     rule="cusum" if out else None, baseline="pooled", baseline_windows=b.windows,
                     sample_size=int(n), cusum=stat, cusum_limit=h, p0=b.mu0, run_start=run_start, run_n=run_n,
                     run_sum=run_sum)
