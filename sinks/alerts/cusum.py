"""A count chart for the negative share: a Bernoulli CUSUM on the scope's own history (pure, no I/O).

The Shewhart and EWMA charts of :mod:`sinks.alerts.detector` judge a window only when it holds
``min_sample`` responses, so a category with 20 responses an hour was never judged. This chart
judges every window, whatever its size, by accumulating evidence response by response:

* **Baseline** ``p0`` - the pooled negative share of the scope's judged windows of the last
  ``baseline_days`` days, leaving out windows that were out of control and the current run (the
  windows since the statistic last stood at zero, so a starting shift never leaks into its own
  baseline). When out-of-control windows are most of that span, the shift is the new normal and
  they become the baseline. The estimate is moved up by one standard error, so a baseline drawn
  from few responses errs on the quiet side. Fewer than ``min_baseline`` responses, or less than
  ``min_span_days`` days of history: cold start (not judged).
* **Alternative** ``p1`` - the odds of a negative response multiplied by ``odds_ratio``, and at
  least ``p0 + min_shift`` (shifts smaller than that are not worth anyone's time).
* **Statistic** - ``S = max(0, S_prev + LLR / phi)`` with the window's log-likelihood ratio
  ``LLR = x log(p1/p0) + (n - x) log((1-p1)/(1-p0))`` for ``x`` negatives in ``n`` assessed
  responses; ``phi >= 1`` is the baseline windows' Pearson dispersion (extra-binomial wobble, e.g.
  the time of day), which scales the evidence down. ``S`` is capped at ``cap x h``, so a recovered
  scope comes back in control within hours.
* **Decision** - out of control while ``S > h``. The expected number of responses before a false
  alarm grows like ``e^h``; the detection delay is about ``h / KL(p_true || p0)`` responses, so it
  follows the scope's volume. The *run* (responses and negatives since ``S`` left zero) is the
  chart's estimate of when the change started and how large it is; both are carried to the alert.

Measured false-alarm and delay figures: ``docs/operations.md`` (``tests/bench/alert_backtest.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from sinks.alerts.charts import CHARTS, ChartConfig, prefix, score_step, window_span
from sinks.alerts.detector import DAY, SIGNALS, Detection, DetectorConfig, History, WindowStats, evaluate

SIGNAL = "negative_share"
#: The decision interval ``h`` by sensitivity level (log-likelihood units).
H_BY_LEVEL = {"low": 14.0, "normal": 12.0, "high": 10.0}


@dataclass(frozen=True)
class CusumConfig:
    """Parameters of the count chart; ``h`` comes from the negative share's sensitivity level."""

    odds_ratio: float = 2.0
    min_shift: float = 0.05
    min_baseline: int = 200
    min_span_days: float = 3.0
    baseline_days: float = 28.0
    cap: float = 1.5
    max_dispersion: float = 3.0


@dataclass(frozen=True)
class Baseline:
    p0: float
    responses: int
    phi: float
    windows: int


def _bernoulli(w: WindowStats) -> tuple[float, ...]:
    n, x = w.sentiment_n, w.negative
    return (1.0, float(n), float(x), x * x / n) if n else (0.0, 0.0, 0.0, 0.0)


def baseline(current: WindowStats, hist: History, cfg: CusumConfig) -> Baseline | None:
    """The scope's pooled negative share before ``current`` (see the module docstring), or None."""
    pre = prefix(hist, SIGNAL, _bernoulli, 4)
    (k, n, x, x2n), first = window_span(pre, hist, SIGNAL, current, cfg.baseline_days)
    if n < cfg.min_baseline or first is None or current.start - first < cfg.min_span_days * DAY:
        return None
    p = (x + 0.5) / (n + 1)
    chi2 = (x2n - 2 * p * x + p * p * n) / (p * (1 - p))  # Pearson: sum (x - n p)^2 / (n p (1 - p))
    phi = min(cfg.max_dispersion, max(1.0, chi2 / max(1.0, k - 1)))
    p0 = min(0.95, p + math.sqrt(phi * p * (1 - p) / n))
    return Baseline(p0, int(n), phi, int(k))


def alternative(p0: float, cfg: CusumConfig) -> float:
    odds = p0 / (1 - p0) * cfg.odds_ratio
    return min(0.99, max(p0 + cfg.min_shift, odds / (1 + odds)))


def step(current: WindowStats, hist: History, cfg: CusumConfig, h: float) -> Detection:
    """The count chart's verdict on one window of the scope (the history excludes it)."""
    n, x = current.sentiment_n, current.negative
    value = x / n if n else None
    b = baseline(current, hist, cfg)
    if b is None:
        return Detection(SIGNAL, "cold_start", value=value, sample_size=n, rule="cusum")
    prev = hist.carry(SIGNAL)
    s_prev = float(prev.get("cusum") or 0.0)
    p1 = alternative(b.p0, cfg)
    llr = (x * math.log(p1 / b.p0) + (n - x) * math.log((1 - p1) / (1 - b.p0))) / b.phi
    s = min(cfg.cap * h, max(0.0, s_prev + llr))
    if s <= 0.0:
        run_start, run_n, run_neg = None, 0, 0
    elif s_prev <= 0.0 or prev.get("run_start") is None:
        run_start, run_n, run_neg = current.start, n, x
    else:
        run_start, run_n, run_neg = float(prev["run_start"]), int(prev["run_n"] or 0) + n, int(prev["run_neg"] or 0) + x
    out = s > h
    return Detection(SIGNAL, "out" if out else "in", value=value, expected=b.p0, phi=b.phi,
                     severity=("critical" if s >= cfg.cap * h else "warning") if out else None,
                     rule="cusum" if out else None, baseline="pooled", baseline_windows=b.windows,
                     sample_size=n, cusum=s, cusum_limit=h, p0=b.p0, run_start=run_start, run_n=run_n,
                     run_neg=run_neg)


def combine(classic: Detection, count: Detection) -> Detection:
    """One verdict: out when the Shewhart limit or the count chart is out (the EWMA only while the
    count chart cannot judge yet); the count chart's state carries on in any case."""
    carry: dict[str, Any] = {k: getattr(count, k) for k in ("cusum", "cusum_limit", "p0", "run_start", "run_n",
                                                            "run_neg", "run_sum")}
    if classic.state == "out" and classic.rule == "ewma" and count.state in ("in", "out"):
        # Persistent shifts are the count chart's: the EWMA on hourly z-scores took a day of slightly
        # higher share (extra-binomial day-to-day wobble) for a shift, 1.5 times a scope-month at
        # 1,000 responses a day (tests/bench/alert_backtest.py); the Shewhart limit still catches jumps.
        classic = replace(classic, state="in", rule=None, severity=None)
    if classic.state == "out":
        return replace(classic, **carry)
    if count.state == "out":
        # the alert's figures: the run's share (or mean score) against the baseline, over the run's responses
        total = count.run_sum if count.run_sum is not None else count.run_neg or 0
        share = total / count.run_n if count.run_n else count.value
        return replace(count, value=share, sample_size=count.run_n or count.sample_size, ewma=classic.ewma)
    if classic.state in ("in", "off") or count.state != "in":
        return replace(classic, **carry)
    return replace(count, ewma=classic.ewma, value=classic.value if classic.value is not None else count.value)


def judge_window(current: WindowStats, hist: History, cfg: DetectorConfig,
                 ccfg: CusumConfig | None = None, scfg: ChartConfig | None = None) -> dict[str, Detection]:
    """Every signal of one window: the negative share, NPS, CSAT and mean sentiment judged by both the SPC
    charts and a count chart (the Bernoulli CUSUM here, the score CUSUMs of :mod:`sinks.alerts.charts`)."""
    out = {s: evaluate(s, current, hist, cfg) for s in SIGNALS}
    level = cfg.sensitivity.get(SIGNAL, "normal")
    if level != "off":
        out[SIGNAL] = combine(out[SIGNAL], step(current, hist, ccfg or CusumConfig(), H_BY_LEVEL[level]))
    for signal in CHARTS:
        level = cfg.sensitivity.get(signal, "normal")
        if level != "off":
            out[signal] = combine(out[signal], score_step(signal, current, hist, H_BY_LEVEL[level], scfg))
    return out
