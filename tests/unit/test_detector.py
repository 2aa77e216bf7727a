"""The SPC detector on synthetic series: quiet when stable, quick on steps, deaf to tiny windows.

Hourly windows (the default), judged against the same hour of earlier days once a week of history
exists. Step sizes are in standard deviations of one window's value (sqrt(p (1 - p) / n) for a
share). The stated detection delays (windows after the step, 90th percentile over 30 series,
default sensitivity) are what the README documents; ``feedback bench`` measures them on thousands
of windows.
"""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

from sinks.alerts.detector import (
    DAY,
    SIGNALS,
    DetectorConfig,
    Entry,
    History,
    WindowStats,
    evaluate,
    select_baseline,
)

CFG = DetectorConfig()
HOUR = 3600
WARM = 24 * 8  # hourly windows are judged once a week of same-hour history exists
WEEKLY = 7 * DAY


def share_series(cfg: DetectorConfig, p: list[float], n: int | list[int], seed: int, seconds: int = HOUR,
                 signal: str = "negative_share") -> list[str]:
    """Judge a series of windows whose negative share is drawn from ``p[t]``; returns the states."""
    rng = random.Random(seed)
    hist = History()
    states = []
    for t, pt in enumerate(p):
        nt = n[t] if isinstance(n, list) else n
        neg = sum(rng.random() < pt for _ in range(nt))
        ws = WindowStats(start=float(t * seconds), seconds=seconds, volume=nt, negative=neg)
        det = evaluate(signal, ws, hist, cfg)
        states.append(det.state)
        hist.add(Entry(ws, {signal: det.to_dict()}))
    return states


def episodes(states: list[str]) -> int:
    """Alarm episodes: runs of consecutive 'out' windows (what would open an alert)."""
    return sum(1 for i, s in enumerate(states) if s == "out" and (i == 0 or states[i - 1] != "out"))


def delay(states: list[str], step_at: int) -> int:
    return next((i - step_at for i in range(step_at, len(states)) if states[i] == "out"), 10_000)


def test_stable_series_with_noise_raises_nothing_over_long_runs() -> None:
    runs = []
    for seed, (n, p) in enumerate([(30, 0.15), (40, 0.05), (80, 0.25), (200, 0.1), (50, 0.4)] * 2):
        rng = random.Random(seed + 99)
        # real-world wobble: the true share drifts a little from window to window (over-dispersion)
        ps = [min(0.95, max(0.01, p * (1 + rng.gauss(0, 0.15)))) for _ in range(1200)]
        states = share_series(CFG, ps, n, seed)
        assert "in" in states
        runs.append(episodes(states))
    judged = 10 * (1200 - 24 * 7)
    assert sum(runs) <= 3, f"{sum(runs)} false alarms in {judged} stable windows: {runs}"


@pytest.mark.parametrize(("k", "median_limit", "p90_limit"), [(3, 4, 7), (2, 7, 12), (1, 30, None)])
def test_step_changes_are_caught_within_stated_windows(k: int, median_limit: int, p90_limit: int | None) -> None:
    """Stated (README): 3 sd within 7 windows, 2 sd within 12 (90% of series); 1 sd within ~30 (median)."""
    n, p0 = 40, 0.15
    sd = math.sqrt(p0 * (1 - p0) / n)
    delays = sorted(delay(share_series(CFG, [p0] * WARM + [p0 + k * sd] * 80, n, seed), WARM)
                    for seed in range(1000, 1030))
    assert delays[len(delays) // 2] <= median_limit, f"{k} sd: delays {delays}"
    if p90_limit is not None:
        assert delays[int(0.9 * len(delays)) - 1] <= p90_limit, f"{k} sd: delays {delays}"
        assert max(delays) <= 2 * p90_limit


def test_low_volume_windows_never_alert() -> None:
    # three e-mails, all negative, after a long calm: never judged
    states = share_series(CFG, [0.1] * WARM + [1.0] * 10, [40] * WARM + [3] * 10, seed=1)
    assert states[WARM:] == ["low_volume"] * 10
    states = share_series(CFG, [0.1] * WARM + [1.0] * 5, [40] * WARM + [CFG.min_sample - 1] * 5, seed=2)
    assert "out" not in states


def test_cold_start_then_judged() -> None:
    hourly = share_series(CFG, [0.9] + [0.1] * (WARM - 1), 40, seed=3)
    assert hourly[:24 * 7] == ["cold_start"] * (24 * 7)  # a week: every hour of the day seen 7 times
    assert set(hourly[24 * 7:]) == {"in"}
    weekly = share_series(CFG, [0.9] + [0.1] * 30, 40, seed=3, seconds=WEEKLY)
    warm = CFG.cold_start + CFG.baseline_windows // 2  # plus the guard band of the rolling baseline
    assert weekly[:warm] == ["cold_start"] * warm
    assert set(weekly[warm:]) <= {"in", "out"} and "in" in weekly[warm:]


def test_improvements_never_alert() -> None:
    assert "out" not in share_series(CFG, [0.3] * WARM + [0.0] * 20, 60, seed=4)


def test_proportions_use_binomial_variance() -> None:
    """The same +7 points is a clear signal at n=400 and noise at n=30."""
    hist = History([Entry(WindowStats(start=float(t * DAY), seconds=HOUR, volume=400, negative=40), {})
                    for t in range(14)])
    big = evaluate("negative_share", WindowStats(start=14.0 * DAY, seconds=HOUR, volume=400, negative=72),
                   hist, CFG)
    small = evaluate("negative_share", WindowStats(start=14.0 * DAY, seconds=HOUR, volume=30, negative=5),
                     hist, CFG)
    assert big.state == "out" and big.expected == pytest.approx(0.1, abs=0.002)
    assert small.state == "in" and small.z is not None and small.z < 2


def test_sensitivity_is_per_signal() -> None:
    series = [0.15] * WARM + [0.15 + 1.5 * math.sqrt(0.15 * 0.85 / 40)] * 40
    d = {level: sorted(delay(share_series(DetectorConfig(sensitivity={"negative_share": level}), series, 40, s),
                             WARM) for s in range(12)) for level in ("low", "normal", "high")}
    assert d["high"][6] <= d["normal"][6] <= d["low"][6] and d["high"][6] < d["low"][6]
    off = share_series(DetectorConfig(sensitivity={"negative_share": "off"}), [0.1] * 30 + [0.9] * 5, 40, 5)
    assert set(off) == {"off"}
    assert CFG.limits("volume") is None and "volume" not in CFG.enabled()  # volume is off by default


def test_time_of_day_baseline_where_history_allows() -> None:
    """Nights are twice as negative as days: with a week of hourly history that is no alarm."""
    hours = 24 * 12
    p = [0.30 if (t % 24) < 6 else 0.12 for t in range(hours)]
    rng_n = 60
    states = share_series(CFG, p, rng_n, seed=7, seconds=3600)
    assert episodes(states[24 * 8:]) == 0
    hist = History()
    rng = random.Random(8)
    for t in range(24 * 8):
        neg = sum(rng.random() < p[t] for _ in range(60))
        ws = WindowStats(start=t * 3600.0, seconds=3600, volume=60, negative=neg)
        hist.add(Entry(ws, {"negative_share": {"state": "in"}}))
    now = WindowStats(start=24 * 8 * 3600.0 + 3 * 3600, seconds=3600, volume=60, negative=18)
    base, kind = select_baseline(SIGNALS["negative_share"], now, hist, CFG)  # type: ignore[misc]
    assert kind == "time_of_day" and all(w.start % DAY == 3 * 3600 for w in base)
    assert evaluate("negative_share", now, hist, CFG).state == "in"  # 30% at 3 a.m. is normal


@pytest.mark.parametrize("signal", ["mean_sentiment", "nps", "csat"])
def test_drops_in_sentiment_nps_and_csat_are_caught(signal: str) -> None:
    rng = random.Random(11)
    hist = History()
    states = []
    for t in range(WARM + 10):
        bad = t >= WARM
        n = 50
        pol = [rng.gauss(-0.25 if bad else 0.1, 0.3) for _ in range(n)]
        mean = sum(pol) / n
        cs = [rng.choice([1, 2, 3] if bad else [3, 4, 5]) for _ in range(n)]
        nps = Counter(rng.choices(["promoter", "passive", "detractor"], [2, 3, 5] if bad else [5, 3, 2], k=n))
        ws = WindowStats(start=t * float(HOUR), seconds=HOUR, volume=n, sentiment_mean=mean,
                         sentiment_std=math.sqrt(sum((x - mean) ** 2 for x in pol) / n),
                         nps_responses=n, promoters=nps["promoter"], detractors=nps["detractor"], csat_responses=n,
                         csat_mean=sum(cs) / n, csat_std=math.sqrt(sum((c - sum(cs) / n) ** 2 for c in cs) / n))
        det = evaluate(signal, ws, hist, CFG)
        states.append(det.state)
        hist.add(Entry(ws, {signal: det.to_dict()}))
    assert "out" not in states[:WARM]
    assert states[WARM] == "out" or states[WARM + 1] == "out"


def test_a_lasting_shift_becomes_the_new_normal() -> None:
    """After more than half of the same-hour baseline is the shifted level, it is the baseline."""
    states = share_series(CFG, [0.1] * WARM + [0.3] * 24 * 10, 60, seed=12)
    assert states[WARM] == "out"
    assert "out" in states[WARM + 24 * 6:WARM + 24 * 7]  # a week later: still out of control
    assert states[-24:] == ["in"] * 24
