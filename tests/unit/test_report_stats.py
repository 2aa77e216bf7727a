"""The report's statistics, checked against known values and by simulation: the intervals cover the
true value about 95 % of the time, and noise alone passes the change test at most about 5 % of the time
(all metrics together, with the Bonferroni correction), while a real change of 10 NPS points between
two periods of 2,000 scored responses is found at least 85 % of the time."""

from __future__ import annotations

import random

import pytest

from sinks.report import stats


def draw(rng: random.Random, n: int, p: float, d: float) -> tuple[int, int]:
    promoters = detractors = 0
    for _ in range(n):
        u = rng.random()
        promoters += u < p
        detractors += p <= u < p + d
    return promoters, detractors


def test_wilson_matches_the_published_values() -> None:
    e = stats.wilson(0, 10)  # Wilson 95 % for 0/10: [0, 0.2775]
    assert e.low == pytest.approx(0, abs=1e-9) and e.high == pytest.approx(27.75, abs=0.01)
    e = stats.wilson(81, 263)  # Newcombe (1998), example: 0.3080 [0.2553, 0.3662]
    assert (e.low, e.high) == (pytest.approx(25.53, abs=0.01), pytest.approx(36.62, abs=0.01))
    assert stats.wilson(0, 0).value is None and not stats.wilson(3, 7).enough


def test_nps_interval_covers_the_truth_about_95_percent() -> None:
    rng = random.Random(1)
    truth, trials, covered = 100 * (0.45 - 0.30), 2000, 0
    for _ in range(trials):
        p, d = draw(rng, 200, 0.45, 0.30)
        e = stats.nps(p, d, 200)
        assert e.low is not None and e.high is not None
        covered += e.low <= truth <= e.high
    assert 0.93 <= covered / trials <= 0.97, covered / trials


def test_noise_alone_is_claimed_at_most_about_5_percent_of_the_time() -> None:
    rng = random.Random(2)
    trials, claimed = 1500, 0
    for _ in range(trials):
        n1, n2 = rng.randint(40, 800), rng.randint(40, 800)
        (p1, d1), (p2, d2) = draw(rng, n1, 0.4, 0.35), draw(rng, n2, 0.4, 0.35)
        k1, k2 = sum(rng.random() < 0.3 for _ in range(n1)), sum(rng.random() < 0.3 for _ in range(n2))
        found = [stats.changed(stats.nps(p1, d1, n1), stats.nps(p2, d2, n2), tests=2),
                 stats.changed(stats.wilson(k1, n1), stats.wilson(k2, n2), tests=2)]
        claimed += any(found)
    assert claimed / trials <= 0.06, claimed / trials


def test_a_real_change_is_found_and_small_samples_never_are() -> None:
    rng = random.Random(3)
    found = 0
    for _ in range(300):
        (p1, d1), (p2, d2) = draw(rng, 2000, 0.40, 0.35), draw(rng, 2000, 0.45, 0.30)  # +10 points
        found += stats.changed(stats.nps(p2, d2, 2000), stats.nps(p1, d1, 2000), tests=3)
    assert found / 300 >= 0.85, found / 300  # 0.87 measured with this seed
    assert not stats.changed(stats.nps(5, 0, 5), stats.nps(0, 5, 5))  # +100 vs -100 from 5 answers each
    assert stats.nps(5, 0, 5).describe() == "not enough data (n = 5 responses; needs 30)"
