"""Metric labels fed from record data: client-chosen scope values hashed, series bounded, stale ones evicted."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from pipeline import metrics
from pipeline.metrics import ScopedGauge, scope_label


@pytest.fixture
def gauge() -> ScopedGauge:
    return ScopedGauge("t_scoped", "test", ["signal", "scope_type", "scope_value"],
                       registry=CollectorRegistry()).bound_scopes()


def test_client_chosen_scopes_are_hashed_the_pipelines_own_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "_allowed_values", frozenset({"kettle"}))
    hashed = scope_label("product", "ann@example.org")
    assert hashed.startswith("h_") and len(hashed) == 14 and "ann" not in hashed
    assert hashed == scope_label("product", "ann@example.org") != scope_label("channel", "ann@example.org")
    assert scope_label("product", "kettle") == "kettle"  # allowed by FEEDBACK_METRIC_LABEL_VALUES
    assert scope_label("category", "delivery") == "delivery" and scope_label("source", "event") == "event"


def test_values_never_reach_the_exposition_and_remove_finds_the_series(gauge: ScopedGauge) -> None:
    gauge.labels("negative_share", "product", "ann@example.org").set(0.5)
    gauge.labels("negative_share", "category", "delivery").set(0.2)
    samples = {tuple(s.labels.values()): s.value for m in gauge.collect() for s in m.samples}
    assert ("negative_share", "product", scope_label("product", "ann@example.org")) in samples
    assert all("ann@example.org" not in v for k in samples for v in k)
    gauge.remove("negative_share", "product", "ann@example.org")  # raw values, as the call sites pass them
    assert len([s for m in gauge.collect() for s in m.samples]) == 1


def test_series_are_bounded_least_recently_set_evicted(gauge: ScopedGauge, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_SCOPE_SERIES", 5)
    before = metrics.SCOPE_SERIES_EVICTED.labels("t_scoped")._value.get()
    for n in range(5):
        gauge.labels("volume", "product", f"p{n}").set(n)
    gauge.labels("volume", "product", "p0").set(10)  # p0 set again: p1 is now the oldest
    gauge.labels("volume", "product", "p5").set(5)
    kept = {s.labels["scope_value"] for m in gauge.collect() for s in m.samples}
    assert len(kept) == 5 and scope_label("product", "p1") not in kept and scope_label("product", "p0") in kept
    assert metrics.SCOPE_SERIES_EVICTED.labels("t_scoped")._value.get() == before + 1


def test_stale_series_are_evicted(gauge: ScopedGauge, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock[0])
    gauge.labels("volume", "channel", "old").set(1)
    clock[0] += metrics.STALE_SCOPE_SECONDS + 61
    gauge.labels("volume", "channel", "new").set(1)
    kept = {s.labels["scope_value"] for m in gauge.collect() for s in m.samples}
    assert kept == {scope_label("channel", "new")}
