"""Detection delay and false alarms of the shipped detector, by volume and shift size (docs/operations.md).

    python -m tests.bench.alert_backtest [--seeds 10] [--months 6] [--out FILE.md]

Synthetic hourly windows of one scope run through :func:`sinks.alerts.cusum.judge_window` (the
alert sink's own verdict: Shewhart + EWMA charts and the count chart, default settings), one window
after another with the history the sink keeps:

* volume per day 10, 50, 200, 1,000, spread over the day (busy afternoons, quiet nights, quieter
  weekends), Poisson-like counts;
* a negative share of 20 % that wobbles by hour of day (+-3 points) and from day to day (a daily
  factor exp(N(0, 0.1)): extra-binomial variation, as real feedback has);
* **delay**: after 35 quiet days the share steps up by +10, +20 or +40 points; the delay is event time
  from the step to the end of the first window judged out of control (median and 90th percentile
  over the seeds; "missed" when nothing within 14 days);
* **false alarms**: the same quiet data for ``--months`` months per seed after the 35-day warm-up;
  an episode is a run of out-of-control windows (what opens an alert, hence an incident, for a
  scope alone); reported per scope-month.
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

from sinks.alerts.cusum import judge_window
from sinks.alerts.detector import DetectorConfig, Entry, History, WindowStats

HOUR = 3600
WARM_DAYS = 35
VOLUMES = (10, 50, 200, 1000)
SHIFTS = (0.10, 0.20, 0.40)
BASE = 0.20


def hourly_mean(per_day: float, t: int) -> float:
    hod, dow = t % 24, (t // 24) % 7
    shape = 0.2 + max(0.0, math.sin(math.pi * (hod - 6) / 16))  # sums to ~ 12.4 over a day
    return per_day / 12.4 * shape * (0.6 if dow >= 5 else 1.16)


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def run(per_day: float, share: Callable[[int], float], hours: int, seed: int,
        stop_at_first: int | None = None) -> list[tuple[int, str]]:
    """(hour, state) of every judged window; stops at the first 'out' at or after ``stop_at_first``."""
    rng = random.Random(seed)
    cfg = DetectorConfig()
    hist = History()
    day_factor = 1.0
    out: list[tuple[int, str]] = []
    for t in range(hours):
        if t % 24 == 0:
            day_factor = math.exp(rng.gauss(0, 0.1))
        n = poisson(rng, hourly_mean(per_day, t))
        if n == 0:
            continue
        p = min(0.95, share(t) * day_factor + 0.03 * math.sin(2 * math.pi * (t % 24) / 24))
        neg = sum(rng.random() < p for _ in range(n))
        ws = WindowStats(start=float(t * HOUR), seconds=HOUR, volume=n, negative=neg)
        verdict = judge_window(ws, hist, cfg)
        state = verdict["negative_share"].state
        out.append((t, state))
        hist.add(Entry(ws, {k: v.to_dict() for k, v in verdict.items()}))
        if stop_at_first is not None and t >= stop_at_first and state == "out":
            break
    return out


def episodes(states: list[tuple[int, str]], after: int) -> int:
    flags = [s == "out" for t, s in states if t >= after]
    return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def delay_table(seeds: int) -> list[list[str]]:
    onset = WARM_DAYS * 24
    rows = []
    for per_day in VOLUMES:
        row = [f"{per_day:,}"]
        for shift in SHIFTS:
            delays: list[float] = []
            for seed in range(seeds):
                states = run(per_day, lambda t, s=shift: BASE + (s if t >= onset else 0.0), onset + 14 * 24,
                             1000 * seed + per_day, stop_at_first=onset)
                first = next((t for t, s in states if s == "out" and t >= onset), None)
                delays.append(math.inf if first is None else first + 1 - onset)
            delays.sort()
            missed = sum(d == math.inf for d in delays)
            med, p90 = delays[len(delays) // 2], delays[max(0, math.ceil(0.9 * len(delays)) - 1)]
            row.append(f"{_h(med)} / {_h(p90)}" + (f" ({missed} missed)" if missed else ""))
        rows.append(row)
    return rows


def _h(hours: float) -> str:
    if hours == math.inf:
        return "missed"
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} d"


def false_alarm_table(seeds: int, months: int) -> list[list[str]]:
    onset = WARM_DAYS * 24
    hours = onset + months * 30 * 24
    rows = []
    for per_day in VOLUMES:
        counts = [episodes(run(per_day, lambda t: BASE, hours, 7000 + 31 * seed + per_day), onset)
                  for seed in range(seeds)]
        scope_months = seeds * months
        total = sum(counts)
        upper = (total + 2.0 * math.sqrt(total + 1) + 1) / scope_months  # a rough 95 % upper bound
        rows.append([f"{per_day:,}", f"{scope_months}", f"{total}", f"{total / scope_months:.3f}",
                     f"{upper:.3f}"])
    return rows


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--months", type=int, default=6)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    started = time.perf_counter()
    delays = delay_table(args.seeds)
    false = false_alarm_table(args.seeds, args.months)
    took = time.perf_counter() - started
    text = "\n\n".join([
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {platform.machine()} {platform.processor() or ''} "
        f"({platform.python_implementation()} {platform.python_version()}), {args.seeds} seeds, "
        f"{took:.0f} s: `python -m tests.bench.alert_backtest --seeds {args.seeds} --months {args.months}`",
        "Detection delay (event time from the step to the end of the first out-of-control window; "
        f"median / 90th percentile over {args.seeds} series; base 20 % negative):",
        markdown(["responses a day", *[f"+{int(s * 100)} points" for s in SHIFTS]], delays),
        f"False alarms on quiet data ({args.months} months per series after a {WARM_DAYS}-day warm-up):",
        markdown(["responses a day", "scope-months", "episodes", "per scope-month", "~95 % upper bound"], false),
    ])
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
