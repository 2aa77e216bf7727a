"""The pure parts of ``feedback bench``: statistics, pacing, the data generator and the report.

Nothing here times anything: performance figures come from ``make bench``, never from a test.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.schema import FeedbackRecord, derive_feedback_id
from tests.bench import core as bench
from tests.bench.core import BenchContext, Pacer, Result, paced, percentile, split_batches
from tests.bench.data import FRAGMENTS, event_payload, generate, stamp
from tests.bench.rig import epoch, wait_count


# -- percentiles -----------------------------------------------------------------------------------------
def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile(reversed(values), 50) == pytest.approx(50.5)  # order does not matter


def test_percentile_of_one_value_and_of_none() -> None:
    assert percentile([3.5], 99) == 3.5
    assert math.isnan(percentile([], 50))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_p99_is_dominated_by_the_slow_tail() -> None:
    values = [0.1] * 980 + [5.0] * 20
    assert percentile(values, 50) == pytest.approx(0.1)
    assert percentile(values, 99) == pytest.approx(5.0)


# -- pacing ------------------------------------------------------------------------------------------------
def test_pacer_schedule_is_open_loop() -> None:
    pacer = Pacer(rate=500, start=100.0)
    assert pacer.due(0) == 100.0
    assert pacer.due(500) == pytest.approx(101.0)
    assert pacer.delay(250, now=100.0) == pytest.approx(0.5)
    # being late never shifts the later events: k=250 is still due at 100.5
    assert pacer.delay(250, now=100.7) == 0.0
    assert pacer.lag(250, now=100.7) == pytest.approx(0.2)
    assert pacer.due(251) == pytest.approx(100.502)
    with pytest.raises(ValueError):
        Pacer(rate=0, start=0)


def test_paced_sleeps_only_until_each_event_is_due() -> None:
    clock = {"now": 10.0}
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock["now"] += seconds

    async def collect() -> list[int]:
        return [k async for k in paced(Pacer(rate=4, start=10.0), 5, lambda: clock["now"], fake_sleep)]

    assert asyncio.run(collect()) == [0, 1, 2, 3, 4]
    assert sleeps == pytest.approx([0.25, 0.25, 0.25, 0.25])
    assert clock["now"] == pytest.approx(11.0)  # 5 events at 4/s: the last is due after 1 s


def test_paced_does_not_sleep_when_behind_schedule() -> None:
    sleeps: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async def collect() -> list[int]:
        return [k async for k in paced(Pacer(rate=100, start=0.0), 3, lambda: 50.0, fake_sleep)]

    assert asyncio.run(collect()) == [0, 1, 2]
    assert sleeps == []


def test_split_batches() -> None:
    assert split_batches(25, 10) == [10, 10, 5]
    assert split_batches(20, 10) == [10, 10]
    assert split_batches(3, 1) == [1, 1, 1]
    assert sum(split_batches(10_000, 7)) == 10_000
    with pytest.raises(ValueError):
        split_batches(5, 0)


def test_wait_count_returns_the_partial_number_when_progress_stalls() -> None:
    assert wait_count(lambda: 7, target=5, stall=0.0, what="x") == 7
    assert wait_count(lambda: 3, target=5, stall=0.0, what="x") == 3


# -- data generator ----------------------------------------------------------------------------------------
def test_generator_is_deterministic_per_seed() -> None:
    a, b = generate(300, seed=7, run="r"), generate(300, seed=7, run="r")
    assert [(r.key, r.fields, r.event_age_s) for r in a] == [(r.key, r.fields, r.event_age_s) for r in b]
    c = generate(300, seed=8, run="r")
    assert [r.fields["text"] for r in a] != [r.fields["text"] for r in c]


def test_generator_makes_a_realistic_valid_mix() -> None:
    records = generate(2000, seed=3, run="mix")
    moods = Counter(r.mood for r in records)
    assert set(moods) == {"negative", "neutral", "positive"}
    assert all(300 < moods[m] < 1000 for m in moods)
    cats = Counter(c for r in records for c in r.categories)
    assert set(cats) == set(FRAGMENTS)  # every category, and texts that match none
    assert {r.fields["source"] for r in records} == {"event", "webform", "ticket", "email"}
    for r in records[:200]:
        text = r.fields["text"]
        assert 10 < len(text) < 300
        nps = r.fields["nps_score"]
        if nps is not None and r.mood == "negative":
            assert nps <= 6
        if nps is not None and r.mood == "positive":
            assert nps >= 7
    assert len({r.key for r in records}) == len(records)  # ids are unique within a run


def test_stamped_records_are_valid_and_keyed_by_their_id() -> None:
    records = generate(20, seed=1, run="stamp")
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for key, value in stamp(records, now):
        rec = FeedbackRecord.model_validate_json(value)
        assert rec.key == key
        assert rec.feedback_id == derive_feedback_id(rec.source, rec.source_ref)
        assert rec.received_at == now
        assert rec.event_time <= now


def test_event_payload_is_a_minimal_valid_api_event() -> None:
    record = generate(1, seed=2, run="api")[0]
    body = event_payload(record, datetime.now(UTC))
    assert "feedback_id" not in body and "received_at" not in body
    assert FeedbackRecord.model_validate(body).key == record.key
    json.dumps(body)  # serializable as the HTTP body


def test_epoch_treats_naive_warehouse_times_as_utc() -> None:
    aware = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert epoch(aware.replace(tzinfo=None)) == epoch(aware) == aware.timestamp()


# -- report ------------------------------------------------------------------------------------------------
RESULTS = [
    Result("spine-passthrough", "records/s raw -> topic", 5000.0, "records/s"),
    Result("spine-raw", "records/s end to end", 1250.0, "records/s", baseline=5000.0,
           baseline_name="passthrough", target=2000.0, notes="50,000/50,000 rows"),
    Result("spine-http", "latency end to end p99", 0.8, "s", target=2.0, higher_is_better=False),
    Result("spine-http", "max RSS processor", 310.0, "MB", target=300.0, higher_is_better=False),
]
META = {"machine": "Test CPU, 2 cores", "records": 50_000, "date": "2026-01-01 00:00 UTC", "quick": False}


def test_result_ratio_and_target() -> None:
    r = RESULTS[1]
    assert r.ratio == pytest.approx(0.25)
    assert r.meets_target is False
    assert RESULTS[2].meets_target is True
    assert RESULTS[3].meets_target is False
    assert RESULTS[0].ratio is None and RESULTS[0].meets_target is None


def test_markdown_report_has_machine_n_ratio_and_verdicts() -> None:
    md = bench.markdown(RESULTS, META)
    lines = md.splitlines()
    assert lines[0].startswith("Machine: Test CPU, 2 cores · broker: tansu · records: 50,000")
    assert lines[2].startswith("| stage | metric | value |")
    assert len([ln for ln in lines if ln.startswith("| spine-")]) == len(RESULTS)
    row = next(ln for ln in lines if "end to end |" in ln)
    assert "1,250 records/s" in row and "5,000 records/s (passthrough)" in row and "0.25x" in row
    assert "≥ 2,000 records/s MISSED" in row
    assert "800 ms" in md and "≤ 2.00 s met" in md


def test_value_formatting() -> None:
    assert bench.fmt_value(0.0123, "s") == "12 ms"
    assert bench.fmt_value(2.5, "s") == "2.50 s"
    assert bench.fmt_value(51234.4, "records/s") == "51,234 records/s"
    assert bench.fmt_value(42.25, "%") == "42.2 %"
    assert bench.fmt_value(float("nan"), "s") == "n/a"


def test_json_and_files(tmp_path: Path) -> None:
    data = json.loads(bench.to_json(RESULTS, META))
    assert data["machine"] == META["machine"] and len(data["results"]) == len(RESULTS)
    assert data["results"][1]["ratio"] == pytest.approx(0.25)
    assert data["results"][1]["meets_target"] is False
    paths = bench.write_report(tmp_path / "out", RESULTS, META)
    assert [p.name for p in paths] == ["results.json", "results.md"]
    assert "| spine-raw |" in paths[1].read_text()


def test_rich_table_renders_every_result() -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(bench.rich_table(RESULTS, META))
    out = console.export_text()
    assert "spine-passthrough" in out and "MISSED" in out and "0.25x" in out


def test_registry_runs_selected_stages_and_closes_shared_resources() -> None:
    closed: list[str] = []
    saved = dict(bench.STAGES)
    try:
        @bench.stage("unit-a")
        def a(ctx: BenchContext) -> list[Result]:
            ctx.shared_resource("res", lambda: "R", closed.append)
            return [Result("unit-a", "m", 1.0, "x")]

        @bench.stage("unit-b")
        def b(ctx: BenchContext) -> list[Result]:
            return [Result("unit-b", "m", 2.0, "x")]

        @bench.stage("unit-broken")
        def broken(ctx: BenchContext) -> list[Result]:
            raise RuntimeError("the processor exited")

        ctx = BenchContext(log=lambda _m: None)
        results = bench.run(ctx, ["unit-b", "unit-broken", "unit-a"])
        # registration order; a failing stage is reported and the others still run
        assert [r.stage for r in results] == ["unit-a", "unit-b", "unit-broken"]
        assert results[2].metric == "stage failed" and "the processor exited" in results[2].notes
        assert math.isnan(results[2].value) and ctx.failed == ["unit-broken"]
        assert closed == ["R"] and ctx.shared == {}
        with pytest.raises(KeyError):
            bench.run(BenchContext(log=lambda _m: None), ["no-such-stage"])
    finally:
        bench.STAGES.clear()
        bench.STAGES.update(saved)
