"""Detection delay and false alarms of the score signals (NPS, CSAT, mean sentiment) by volume (docs/alerts.md).

    python -m tests.bench.score_backtest [--seeds 10] [--months 6] [--out FILE.md] [--baseline]   (make alert-eval)

``--baseline`` runs the same data through the SPC charts alone (Shewhart + EWMA from 30 responses a
window: how the score signals were judged before the score charts).

Synthetic hourly windows of one scope run through :func:`sinks.alerts.cusum.judge_window` (the
alert sink's own verdict, default settings: the Shewhart/EWMA charts from 30 responses a window,
the score CUSUMs of :mod:`sinks.alerts.charts` at any volume), window after window with the history
the sink keeps. Every response carries the three scores:

* volume per day 10, 50, 200, 1,000 (busy afternoons, quiet nights, quieter weekends; Poisson counts);
* baseline: sentiment polarity N(0.2, 0.5) clipped to [-1, 1]; NPS from 50 % promoters, 30 % passives,
  20 % detractors (NPS +30); CSAT 1-5 with shares 5/5/15/35/40 % (mean 4.0); day-to-day wobble of
  about 5 % of a response's standard deviation, as the negative-share bench has (sentiment mean
  + N(0, 0.024), promoter share x exp(N(0, 0.05)), top-box share x exp(N(0, 0.035)));
* **delay**: after 35 quiet days the three scores fall together by a small, medium or large step
  (sentiment -0.1 / -0.2 / -0.4; NPS -10 / -20 / -40 points, promoters turning detractors; CSAT -0.25 /
  -0.5 / -1.0, top box turning 1); event time from the step to the end of the first window judged out
  of control (median / 90th percentile over the seeds; "missed" when nothing within 14 days);
* **false alarms**: the same quiet data for ``--months`` months per seed after the warm-up; an
  episode is a run of out-of-control windows (what opens an alert) per scope-month.
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from sinks.alerts.cusum import judge_window
from sinks.alerts.detector import Detection, DetectorConfig, Entry, History, WindowStats, evaluate_all
from tests.bench.alert_backtest import _h, episodes, hourly_mean, markdown, poisson

HOUR = 3600
WARM_DAYS = 35
VOLUMES = (10, 50, 200, 1000)
SIGNALS = ("mean_sentiment", "nps", "csat")
#: step sizes (small, medium, large) per signal, in the signal's unit
STEPS = {"mean_sentiment": (0.1, 0.2, 0.4), "nps": (10.0, 20.0, 40.0), "csat": (0.25, 0.5, 1.0)}
CSAT_BASE = (0.05, 0.05, 0.15, 0.35, 0.40)


def window(rng: random.Random, start: float, n: int, size: int | None, day: tuple[float, float, float]) -> WindowStats:
    """One hourly window of ``n`` responses; ``size`` (0, 1, 2) picks the step, None: quiet."""
    s_shift = STEPS["mean_sentiment"][size] if size is not None else 0.0
    moved = STEPS["nps"][size] / 200 if size is not None else 0.0  # promoters turning detractors
    top = STEPS["csat"][size] / 4 if size is not None else 0.0  # 5s turning 1s
    mu, prom, five = 0.2 + day[0] - s_shift, 0.5 * day[1] - moved, CSAT_BASE[4] * day[2] - top
    det = 0.2 + (0.5 - 0.5 * day[1]) / 2 + moved
    csat = [CSAT_BASE[0] + (CSAT_BASE[4] - five), *CSAT_BASE[1:4], five]
    pol, promoters, detractors, scores = [], 0, 0, []
    for _ in range(n):
        pol.append(min(1.0, max(-1.0, rng.gauss(mu, 0.5))))
        u = rng.random()
        promoters += u < prom
        detractors += u >= 1 - det
        scores.append(rng.choices((1, 2, 3, 4, 5), csat)[0])
    m = sum(pol) / n
    c = sum(scores) / n
    return WindowStats(start=start, seconds=HOUR, volume=n, negative=sum(p < -0.3 for p in pol),
                       sentiment_mean=m, sentiment_std=math.sqrt(max(0.0, sum(p * p for p in pol) / n - m * m)),
                       nps_responses=n, promoters=promoters, detractors=detractors, csat_responses=n, csat_mean=c,
                       csat_std=math.sqrt(max(0.0, sum(x * x for x in scores) / n - c * c)))


#: --baseline: the SPC charts alone (what judged the score signals before the score charts)
JUDGE: dict[str, Callable[[WindowStats, History, DetectorConfig], dict[str, Detection]]] = {"judge": judge_window}


def run(per_day: float, hours: int, seed: int, onset: int | None = None, size: int | None = None,
        cfg: DetectorConfig | None = None) -> dict[str, list[tuple[int, str]]]:
    """Per score signal, (hour, state) of every judged window; stops once every signal was out after ``onset``."""
    rng = random.Random(seed)
    cfg = cfg or DetectorConfig()
    hist = History()
    out: dict[str, list[tuple[int, str]]] = {s: [] for s in SIGNALS}
    caught: set[str] = set()
    day = (0.0, 1.0, 1.0)
    for t in range(hours):
        if t % 24 == 0:
            day = (rng.gauss(0, 0.024), math.exp(rng.gauss(0, 0.05)), math.exp(rng.gauss(0, 0.035)))
        n = poisson(rng, hourly_mean(per_day, t))
        if n == 0:
            continue
        shifted = size if onset is not None and t >= onset else None
        ws = window(rng, float(t * HOUR), n, shifted, day)
        verdict = JUDGE["judge"](ws, hist, cfg)
        for s in SIGNALS:
            out[s].append((t, verdict[s].state))
            if onset is not None and t >= onset and verdict[s].state == "out":
                caught.add(s)
        hist.add(Entry(ws, {k: v.to_dict() for k, v in verdict.items()}))
        if onset is not None and caught == set(SIGNALS):
            break
    return out


def delay_rows(seeds: int) -> dict[str, list[list[str]]]:
    onset = WARM_DAYS * 24
    rows: dict[str, list[list[str]]] = {s: [] for s in SIGNALS}
    for per_day in VOLUMES:
        cells: dict[str, list[str]] = {s: [f"{per_day:,}"] for s in SIGNALS}
        for size in range(3):
            delays: dict[str, list[float]] = {s: [] for s in SIGNALS}
            for seed in range(seeds):
                states = run(per_day, onset + 14 * 24, 1000 * seed + per_day, onset=onset, size=size)
                for s in SIGNALS:
                    first = next((t for t, st in states[s] if st == "out" and t >= onset), None)
                    delays[s].append(math.inf if first is None else first + 1 - onset)
            for s in SIGNALS:
                d = sorted(delays[s])
                missed = sum(x == math.inf for x in d)
                med, p90 = d[len(d) // 2], d[max(0, math.ceil(0.9 * len(d)) - 1)]
                cells[s].append(f"{_h(med)} / {_h(p90)}" + (f" ({missed} missed)" if missed else ""))
        for s in SIGNALS:
            rows[s].append(cells[s])
    return rows


def false_alarm_rows(seeds: int, months: int) -> list[list[str]]:
    onset = WARM_DAYS * 24
    rows = []
    for per_day in VOLUMES:
        totals = dict.fromkeys(SIGNALS, 0)
        for seed in range(seeds):
            states = run(per_day, onset + months * 30 * 24, 7000 + 31 * seed + per_day)
            for s in SIGNALS:
                totals[s] += episodes(states[s], onset)
        scope_months = seeds * months
        rows.append([f"{per_day:,}", f"{scope_months}"] + [f"{totals[s]} ({totals[s] / scope_months:.3f})"
                                                            for s in SIGNALS])
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--out", default=None)
    ap.add_argument("--baseline", action="store_true", help="the SPC charts alone (before the score charts)")
    args = ap.parse_args(argv)
    if args.baseline:
        JUDGE["judge"] = evaluate_all
    started = time.perf_counter()
    delays = delay_rows(args.seeds)
    false = false_alarm_rows(args.seeds, args.months)
    took = time.perf_counter() - started
    units = {"mean_sentiment": ("Mean sentiment", "{:g}"), "nps": ("NPS", "{:g} points"), "csat": ("CSAT", "{:g}")}
    parts = [f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()} "
             f"({platform.python_implementation()} {platform.python_version()}), {args.seeds} seeds, {took:.0f} s: "
             f"`python -m tests.bench.score_backtest --seeds {args.seeds} --months {args.months}"
             f"{' --baseline' if args.baseline else ''}`"]
    for s in SIGNALS:
        label, fmt = units[s]
        parts.append(f"{label}: detection delay (median / 90th percentile over {args.seeds} series)")
        parts.append(markdown(["responses a day", *[f"-{fmt.format(x)}" for x in STEPS[s]]], delays[s]))
    parts.append(f"False alarms on quiet data ({args.months} months per series after a {WARM_DAYS}-day warm-up): "
                 "episodes (per scope-month)")
    parts.append(markdown(["responses a day", "scope-months", *[units[s][0] for s in SIGNALS]], false))
    text = "\n\n".join(parts)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
