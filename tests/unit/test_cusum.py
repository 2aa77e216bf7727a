"""The count chart (Bernoulli CUSUM) on synthetic hourly series: every volume judged, delay follows volume.

The figures by volume and shift size over many series are measured by ``tests/bench/alert_backtest.py``
and written to docs/operations.md; these tests pin the behaviour the issue asks for on a few seeds.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from sinks.alerts.cusum import CusumConfig, alternative, baseline, judge_window
from sinks.alerts.detector import DAY, DetectorConfig, Entry, History, WindowStats

HOUR = 3600
CFG = DetectorConfig()


def series(volume: Callable[[int, random.Random], int], share: Callable[[int], float], hours: int,
           seed: int, cfg: DetectorConfig = CFG) -> list[tuple[str, dict[str, object]]]:
    """Judge hourly windows; returns (state, negative-share verdict) per hour (skipped: 'none')."""
    rng = random.Random(seed)
    hist = History()
    out: list[tuple[str, dict[str, object]]] = []
    for t in range(hours):
        n = volume(t, rng)
        if n == 0:
            out.append(("none", {}))
            continue
        ws = WindowStats(start=float(t * HOUR), seconds=HOUR, volume=n,
                         negative=sum(rng.random() < share(t) for _ in range(n)))
        verdict = {k: v.to_dict() for k, v in judge_window(ws, hist, cfg).items()}
        out.append((str(verdict["negative_share"]["state"]), verdict["negative_share"]))
        hist.add(Entry(ws, verdict))
    return out


def first_out(states: list[tuple[str, dict[str, object]]]) -> int | None:
    return next((i for i, (s, _) in enumerate(states) if s == "out"), None)


def episodes(states: list[tuple[str, dict[str, object]]]) -> int:
    flags = [s == "out" for s, _ in states]
    return sum(1 for i, f in enumerate(flags) if f and (i == 0 or not flags[i - 1]))


def seasonal_volume(per_day: float) -> Callable[[int, random.Random], int]:
    """Busy days and quiet nights, quieter weekends; Poisson-like counts around ``per_day``."""
    def volume(t: int, rng: random.Random) -> int:
        hod, dow = t % 24, (t // 24) % 7
        shape = 0.2 + max(0.0, math.sin(math.pi * (hod - 6) / 16))
        mean = per_day / 14.0 * shape * (0.6 if dow >= 5 else 1.1)
        return sum(rng.random() < mean / 50 for _ in range(50)) if mean < 50 else int(rng.gauss(mean, mean ** 0.5))
    return volume


ONSET = 9 * 24


def test_twenty_an_hour_shift_is_caught_within_a_day_and_not_before() -> None:
    """The issue's scenario: 20 delivery responses an hour, 20 % -> 60 % negative from day 10."""
    for seed in range(4):
        states = series(lambda t, r: 20, lambda t: 0.6 if t >= ONSET else 0.2, 12 * 24, seed)
        first = first_out(states)
        assert first is not None and ONSET <= first <= ONSET + 24, (seed, first)
        verdict = states[first][1]
        assert verdict["rule"] == "cusum"
        # the run starts near the onset and its share is the new level, measured on all its responses
        assert abs(float(verdict["run_start"]) - ONSET * HOUR) <= 6 * HOUR  # type: ignore[arg-type]
        assert 0.4 < float(verdict["value"]) < 0.8 and int(verdict["sample_size"]) >= 20  # type: ignore[arg-type]
        assert 0.18 < float(verdict["expected"]) < 0.26  # type: ignore[arg-type]


def test_two_hundred_an_hour_is_caught_within_two_hours() -> None:
    for seed in range(3):
        states = series(lambda t, r: 200, lambda t: 0.6 if t >= ONSET else 0.2, ONSET + 12, seed)
        first = first_out(states)
        assert first is not None and ONSET <= first < ONSET + 2


def test_quiet_seasonal_weeks_raise_nothing() -> None:
    """Volume by hour and weekday, a negative share that itself wobbles by hour of day: 8 weeks, 4 seeds."""
    for seed in range(4):
        states = series(seasonal_volume(400), lambda t: 0.2 + 0.04 * math.sin(2 * math.pi * (t % 24) / 24),
                        56 * 24, seed)
        assert episodes(states) == 0, seed


def test_sparse_scope_never_alarms_on_noise() -> None:
    """Five responses a day for four months: never out."""
    for seed in range(4):
        states = series(seasonal_volume(5), lambda t: 0.2, 120 * 24, seed)
        assert episodes(states) == 0, seed
        # 28 days of five a day are fewer than the 200 responses a baseline needs: never judged by counts
        assert not any("cusum" in d for _, d in states)


def test_slow_drift_is_caught() -> None:
    """20 % -> 50 % over three weeks, 100 a day: an alarm during the drift, none in the quiet month before."""
    drift = 30 * 24

    def share(t: int) -> float:
        return 0.2 + 0.3 * min(1.0, max(0.0, (t - drift) / (21 * 24)))

    for seed in range(3):
        states = series(seasonal_volume(100), share, drift + 28 * 24, seed)
        first = first_out(states)
        assert first is not None and drift < first < drift + 21 * 24, (seed, first)


def test_recovery_brings_the_chart_back_in_control() -> None:
    states = series(lambda t, r: 40, lambda t: 0.6 if ONSET <= t < ONSET + 48 else 0.2, ONSET + 96, 7)
    assert states[ONSET + 47][0] == "out"
    assert states[-1][0] == "in" and states[-1][1].get("cusum", 0) < 12  # type: ignore[operator]


def test_baseline_leaves_out_the_current_run_and_widens_for_few_responses() -> None:
    hist = History()
    for t in range(5 * 24):
        hist.add(Entry(WindowStats(start=float(t * HOUR), seconds=HOUR, volume=10, negative=2), {}))
    b = baseline(WindowStats(start=5.0 * DAY, seconds=HOUR, volume=10, negative=2), hist, CusumConfig())
    assert b is not None and b.responses == 1200 and b.phi == 1.0
    assert 0.2 < b.p0 < 0.2 + 2 * math.sqrt(0.2 * 0.8 / 1200)  # moved up by about one standard error
    assert alternative(0.2, CusumConfig()) == CusumConfig().odds_ratio * 0.25 / (1 + 2 * 0.25)
    assert baseline(WindowStats(start=2.0 * DAY, seconds=HOUR, volume=10, negative=2), History(),
                    CusumConfig()) is None


def test_off_leaves_the_negative_share_to_nobody() -> None:
    cfg = DetectorConfig(sensitivity={"negative_share": "off"})
    states = series(lambda t, r: 20, lambda t: 0.9 if t >= ONSET else 0.1, ONSET + 24, 1, cfg)
    assert {s for s, _ in states} == {"off"}
