"""The score charts (NPS, CSAT, mean sentiment: a CUSUM on per-response scores) on synthetic hourly series.

A scope with ~5 scored responses an hour never reaches the SPC charts' 30 a window; these tests pin
that it is judged anyway: quiet data stays quiet, a fall is caught within days, the alert carries the
run's mean against the baseline. Figures over many series: ``tests/bench/score_backtest.py`` (docs/alerts.md).
"""

from __future__ import annotations

import math
import random

import pytest

from sinks.alerts.charts import CHARTS, ChartConfig, score_baseline
from sinks.alerts.cusum import judge_window
from sinks.alerts.detector import DetectorConfig, Entry, History
from tests.bench.alert_backtest import hourly_mean, poisson
from tests.bench.score_backtest import SIGNALS, window

HOUR = 3600
ONSET = 20 * 24


def judged(per_day: float, hours: int, seed: int, size: int | None = None,
           cfg: DetectorConfig | None = None) -> list[dict[str, dict[str, object]]]:
    """The verdicts of every non-empty hourly window (a step of ``size`` from ONSET on)."""
    rng = random.Random(seed)
    hist, out = History(), []
    for t in range(hours):
        day = (rng.gauss(0, 0.024), math.exp(rng.gauss(0, 0.05)), math.exp(rng.gauss(0, 0.035)))
        n = poisson(rng, hourly_mean(per_day, t))
        if n == 0:
            continue
        ws = window(rng, float(t * HOUR), n, size if size is not None and t >= ONSET else None, day)
        verdict = {k: v.to_dict() for k, v in judge_window(ws, hist, cfg or DetectorConfig()).items()}
        out.append({"t": {"hour": t}, **verdict})
        hist.add(Entry(ws, verdict))
    return out


def first_out(rows: list[dict[str, dict[str, object]]], signal: str) -> int | None:
    return next((int(r["t"]["hour"]) for r in rows if r[signal]["state"] == "out"), None)  # type: ignore[call-overload]


@pytest.mark.parametrize("seed", [1, 2])
def test_sparse_scope_scores_are_judged_and_quiet_data_stays_quiet(seed: int) -> None:
    rows = judged(120, 30 * 24, seed)  # ~5 scored responses an hour: below min_sample=30 in every window
    for signal in SIGNALS:
        states = [str(r[signal]["state"]) for r in rows]
        assert "low_volume" not in states[3 * 24:]  # judged by the count chart once it has a baseline
        assert states.count("in") > len(states) // 2
        assert "out" not in states, signal


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_large_fall_in_a_sparse_scope_is_caught_within_days(seed: int) -> None:
    rows = judged(120, ONSET + 7 * 24, seed, size=2)  # sentiment -0.4, NPS -40 points, CSAT -1.0
    for signal in SIGNALS:
        first = first_out(rows, signal)
        assert first is not None and ONSET <= first < ONSET + 3 * 24, (signal, first)
        hit = next(r[signal] for r in rows if r[signal]["state"] == "out")
        assert hit["rule"] == "cusum" and hit["baseline"] == "pooled"
        # the alert's figures: the run's mean score against the (lower, conservative) baseline
        assert float(hit["value"]) < float(hit["expected"])  # type: ignore[arg-type]
        assert int(hit["sample_size"]) == int(hit["run_n"]) > 0  # type: ignore[call-overload]


def test_delay_follows_volume() -> None:
    slow = first_out(judged(120, ONSET + 10 * 24, 4, size=1), "nps")
    fast = first_out(judged(1000, ONSET + 10 * 24, 4, size=1), "nps")
    assert slow is not None and fast is not None and ONSET <= fast < slow


def test_cold_start_and_off() -> None:
    rows = judged(120, 4 * 24, 5)
    # less than 3 days of history: the count chart cannot judge, and the SPC charts see too few responses
    assert all(r["nps"]["state"] in ("cold_start", "low_volume") and "cusum" not in r["nps"] for r in rows[:24])
    off = judged(120, 6 * 24, 5, cfg=DetectorConfig(sensitivity={"csat": "off"}))
    assert all(r["csat"]["state"] == "off" for r in off) and any(r["nps"]["state"] == "in" for r in off)


def test_baseline_is_the_pooled_mean_moved_towards_the_bad_side() -> None:
    rng = random.Random(9)
    hist = History()
    for t in range(6 * 24):
        ws = window(rng, float(t * HOUR), 10, None, (0.0, 1.0, 1.0))
        hist.add(Entry(ws, {}))
    current = window(rng, float(6 * 24 * HOUR), 10, None, (0.0, 1.0, 1.0))
    b = score_baseline(CHARTS["nps"], current, hist, ChartConfig())
    assert b is not None and b.responses == 6 * 24 * 10
    assert 30 - 4 * 78 / math.sqrt(b.responses) < b.mu0 < 30  # NPS +30 less about one standard error
    assert 70 < b.sigma < 85  # sqrt(1e4 (0.5 + 0.2) - 30^2) = 78
