"""Event-time signal windows: alignment, watermark, lateness, dedupe, aggregates, restart by replay."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from pipeline.config import ConfigError, load
from pipeline.schema import CategoryTag, EnrichedFeedback, FeedbackRecord, Sentiment
from pipeline.signal_config import SignalSettings, parse_duration
from pipeline.signal_schema import SignalWindow
from processors.signals.windows import (
    Observation,
    SeenIds,
    WindowAggregator,
    WindowSpec,
    scopes_of,
    window_id,
    window_specs,
)

T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()  # a Monday, 00:00 UTC
H = 3600.0
SPECS = window_specs(3600, 86400, ["product"])


def obs(fid: str, t: float, p: int = 0, label: str = "neutral", pol: float = 0.0, nps: str | None = None,
        csat: int | None = None, scopes: tuple[tuple[str, str], ...] = (("overall", "all"),)) -> Observation:
    return Observation(fid, t, p, label, pol, nps, csat, scopes)


def by_scope(windows: list[SignalWindow]) -> dict[tuple[str, str, float], SignalWindow]:
    return {(w.scope_type, w.scope_value, w.window_start.timestamp()): w for w in windows}


def test_durations_and_settings_are_validated() -> None:
    assert [parse_duration(v) for v in ("1h", "15m", "1d", "90s", "2w", 3600)] == [3600, 900, 86400, 90, 1209600, 3600]
    with pytest.raises(ValueError):
        parse_duration("an hour")
    s = load(SignalSettings, signal_window="15m", signal_allowed_lateness="5m",
             signal_sensitivity="nps=high,volume=off", signal_slow_scopes="product,channel")
    assert (s.signal_window, s.signal_allowed_lateness, s.signal_slow_scopes) == (900, 300, ["product", "channel"])
    assert s.signal_sensitivity == {"nps": "high", "volume": "off"}
    for bad in ({"signal_window": "7m"}, {"signal_sensitivity": "nps=loud"}, {"signal_slow_scopes": "planet"}):
        with pytest.raises(ConfigError, match="FEEDBACK_SIGNAL_"):
            load(SignalSettings, **bad)


def test_window_closes_when_watermark_passes_its_end_in_event_time() -> None:
    agg = WindowAggregator(SPECS, lateness=600)
    agg.apply(obs("a", T0 + 5 * 60), 0)
    agg.apply(obs("b", T0 + 55 * 60), 1)
    assert agg.advance() == []
    agg.apply(obs("c", T0 + H + 9 * 60), 2)  # watermark 10:59 - not yet
    assert agg.advance() == []
    agg.apply(obs("d", T0 + H + 10 * 60), 3)  # watermark 11:00: [10:00, 11:00) closes
    closed = agg.advance()
    assert [(w.scope_type, w.window_start.timestamp(), w.volume) for w in closed] == [("overall", T0, 2)]
    assert closed[0].window_end.timestamp() == T0 + H and closed[0].window_seconds == 3600
    # a backfill of long-past event times produces those past windows
    old = WindowAggregator(SPECS, lateness=0)
    old.apply(obs("x", T0 - 30 * 86400), 0)
    old.apply(obs("y", T0 - 29 * 86400), 1)
    assert [w.window_start.timestamp() for w in old.advance()] == [T0 - 30 * 86400]


def test_late_records_and_duplicates_are_not_counted() -> None:
    agg = WindowAggregator(SPECS, lateness=0)
    agg.apply(obs("a", T0 + 10), 0)
    assert agg.apply(obs("a", T0 + 20), 1) == "duplicate"  # same feedback id: counted once
    agg.apply(obs("b", T0 + H + 1), 2)
    [w] = agg.advance()
    assert w.volume == 1
    assert agg.apply(obs("late", T0 + 30), 3) == "late"
    assert agg.stats == {"counted": 2, "late": 1, "duplicate": 1, "replayed": 0}
    assert agg.apply(obs("again", T0 + H + 2), 2) == "replayed"  # an offset below the resume point


def test_seen_ids_stay_exact_across_merges_of_their_compact_store() -> None:
    seen = SeenIds()
    ids = [f"feedback-{i}" for i in range(3 * SeenIds.MIN_MERGE + 17)]  # several merges into the array
    assert all(seen.add(SeenIds.digest(i)) for i in ids)
    assert len(seen) == len(ids)
    # every id is known afterwards, whether it sits in the merged array or among the recent ones
    assert not any(seen.add(SeenIds.digest(i)) for i in reversed(ids))
    assert seen.add(SeenIds.digest("feedback-new")) and len(seen) == len(ids) + 1
    assert SeenIds.digest("a") == SeenIds.digest("a") != SeenIds.digest("b")  # the same in every process


def test_a_window_with_many_ids_counts_each_once() -> None:
    agg = WindowAggregator(SPECS, lateness=0)
    n = 2 * SeenIds.MIN_MERGE + 5
    for i in range(n):
        assert agg.apply(obs(f"id-{i}", T0 + i * 0.1), i) == "counted"
    for j in range(n):  # re-deliveries of all of them, at new offsets
        assert agg.apply(obs(f"id-{j}", T0 + j * 0.1), n + j) == "duplicate"
    agg.apply(obs("next-day", T0 + 25 * H), 2 * n)
    windows = agg.advance()
    assert [w.volume for w in windows if w.window_seconds == 3600] == [n]
    assert agg.stats["counted"] == n + 1 and agg.stats["duplicate"] == n


def test_watermark_is_the_minimum_over_source_partitions() -> None:
    """In a backfill one partition may run far ahead; the others' records must not become late."""
    agg = WindowAggregator(SPECS, lateness=0, partitions=2)
    agg.apply(obs("p0-a", T0 + 10, p=0), 0)
    agg.apply(obs("p0-b", T0 + 5 * H, p=0), 1)  # partition 0 is five hours ahead
    assert agg.advance() == []  # partition 1 has not spoken yet
    agg.apply(obs("p1-a", T0 + 20, p=1), 2)
    agg.apply(obs("p1-b", T0 + H + 20, p=1), 3)
    closed = agg.advance()
    assert [(w.window_start.timestamp(), w.volume) for w in closed] == [(T0, 2)]


def test_aggregates_per_scope_and_slow_scopes_use_the_daily_window() -> None:
    sc_a = (("overall", "all"), ("category", "delivery"), ("product", "widget"))
    sc_b = (("overall", "all"), ("category", "billing"))
    agg = WindowAggregator(SPECS, lateness=0)
    agg.apply(obs("1", T0 + 1, label="negative", pol=-0.5, nps="detractor", csat=1, scopes=sc_a), 0)
    agg.apply(obs("2", T0 + 2, label="positive", pol=0.5, nps="promoter", csat=5, scopes=sc_a), 1)
    agg.apply(obs("3", T0 + 3, label="negative", pol=-1.0, nps="promoter", scopes=sc_b), 2)
    agg.apply(obs("4", T0 + 86400 + 1, scopes=sc_b), 3)
    got = by_scope(agg.advance())
    overall = got[("overall", "all", T0)]
    assert (overall.volume, overall.negative, overall.positive, overall.neutral) == (3, 2, 1, 0)
    assert overall.negative_share == pytest.approx(2 / 3)
    assert overall.sentiment_mean == pytest.approx(-1 / 3)
    assert overall.sentiment_std == pytest.approx((((-0.5 + 1 / 3) ** 2 + (0.5 + 1 / 3) ** 2 + (-1 + 1 / 3) ** 2) / 3)
                                                  ** 0.5)
    assert (overall.nps_responses, overall.promoters, overall.detractors) == (3, 2, 1)
    assert overall.nps == pytest.approx(100 / 3)
    assert (overall.csat_responses, overall.csat_mean) == (2, 3.0)
    delivery = got[("category", "delivery", T0)]
    assert (delivery.volume, delivery.negative_share, delivery.nps) == (2, 0.5, 0.0)
    product = got[("product", "widget", T0)]
    assert product.window_seconds == 86400 and product.volume == 2
    assert all(w.window_seconds == 3600 for k, w in got.items() if k[0] != "product")
    assert got[("category", "billing", T0)].csat_mean is None  # nothing to average
    assert overall.window_id == window_id("overall", "all", T0, 3600)  # the same window, the same id


def test_observation_roundtrip_and_scopes_of_an_enriched_record() -> None:
    item = EnrichedFeedback(
        source="email", channel="support@acme", source_ref="m-1", text="The parcel never arrived", product="widget",
        nps_score=3, csat_score=2, event_time=datetime(2026, 3, 2, 10, 30, tzinfo=UTC),
        sentiment=Sentiment(polarity=-0.4, subjectivity=0.5, label="negative"),
        categories=[CategoryTag(name="delivery", confidence=0.8), CategoryTag(name="customer_support", confidence=0.7)],
        nps_class="detractor")
    assert scopes_of(item) == (("overall", "all"), ("source", "email"), ("channel", "support@acme"),
                               ("category", "delivery"), ("category", "customer_support"), ("product", "widget"))
    o = Observation.from_enriched(item, partition=3)
    assert Observation.from_bytes(o.to_bytes()) == o
    assert (o.partition, o.label, o.nps_class, o.csat) == (3, "negative", "detractor", 2)


def test_idle_live_stream_closes_by_forced_watermark() -> None:
    agg = WindowAggregator([WindowSpec(3600, frozenset({"overall"}))], lateness=600)
    agg.apply(obs("a", T0 + 50 * 60), 0)
    assert agg.advance() == []
    assert [w.volume for w in agg.force_watermark(T0 + H)] == [1]
    assert agg.apply(obs("b", T0 + 55 * 60), 1) == "late"


def _stream(n: int, seed: int) -> list[Observation]:
    """A backfill over two partitions, each in event-time order up to 20 minutes of jitter."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        p = rng.randrange(2)
        t = T0 + i * 45 + rng.uniform(-1200, 0)  # ~80 records per hour
        cats = rng.sample(["delivery", "billing", "praise"], rng.randint(1, 2))
        scopes = (("overall", "all"), *(("category", c) for c in cats), ("product", rng.choice("ABC")))
        label = rng.choice(["negative", "neutral", "positive"])
        out.append(obs(f"f{i % (n - 7)}", t, p, label, rng.uniform(-1, 1), rng.choice([None, "promoter", "detractor"]),
                       rng.choice([None, 1, 5]), scopes))  # a few ids repeat: redeliveries
    return out


def _content(w: SignalWindow) -> tuple[object, ...]:
    return tuple(v for k, v in w.model_dump().items() if k != "closed_at")


@pytest.mark.parametrize("crash_at", [500, 1337, 2900])
def test_restart_from_any_checkpoint_replays_to_the_same_windows(crash_at: int) -> None:
    stream = _stream(3000, seed=crash_at)
    full = WindowAggregator(SPECS, lateness=1500, partitions=2)
    expected: list[SignalWindow] = []
    for off, o in enumerate(stream):
        full.apply(o, off)
        expected += full.advance()
    reference = {w.window_id: _content(w) for w in expected}
    assert len(reference) == len(expected)  # each window emitted once per run

    # The first run checkpoints now and then, then dies at crash_at; the checkpoint may be stale.
    run = WindowAggregator(SPECS, lateness=1500, partitions=2)
    emitted: list[SignalWindow] = []
    checkpoints = []
    for off, o in enumerate(stream[:crash_at]):
        run.apply(o, off)
        emitted += run.advance()
        if off % 211 == 0:
            checkpoints.append(run.checkpoint())
    for ck in (checkpoints[-1], checkpoints[len(checkpoints) // 2], None):  # any checkpoint is valid
        again = WindowAggregator.restore(ck, SPECS, lateness=1500, partitions=2)
        after: list[SignalWindow] = []
        for off in range(again.next_offset, len(stream)):
            again.apply(stream[off], off)
            after += again.advance()
        seen = {}
        for w in emitted + after:
            assert w.window_id in reference, "a partial window was emitted"
            assert _content(w) == reference[w.window_id], "a re-emitted window differs"
            seen[w.window_id] = True
        assert set(seen) == set(reference)


def test_the_processor_observes_each_enriched_record_it_sends_and_skips_ticket_states() -> None:
    """The enrich agent sends each enriched record's observation itself (no second agent reading
    feedback.enriched back): process_record hands it the record, observation_of makes the observation."""
    from pipeline.topics import Topics
    from processors.app import process_record
    from processors.enrich import Enricher, RecentSet
    from processors.signals.agent import observation_of
    from processors.taxonomy import Taxonomy

    raw = FeedbackRecord(source="ticket", source_ref="t-1", text="Still waiting for my order, the parcel is lost",
                         event_time=datetime(2026, 3, 2, tzinfo=UTC)).model_dump_json().encode()
    out = process_record(raw, None, Enricher(Taxonomy.load()), RecentSet(10), Topics("r", "e", "a", "d"))
    assert out is not None
    kind, key, value, item = out
    assert kind == "enriched" and item is not None and key == item.key
    assert EnrichedFeedback.model_validate_json(value).feedback_id == item.feedback_id
    obs = observation_of(item, 2)
    assert obs is not None and obs == Observation.from_enriched(item, partition=2)
    assert obs.partition == 2 and ("category", "delivery") in obs.scopes and obs.label == item.sentiment.label
    state = item.model_copy(update={"attributes": {"ticket_event": "state"}})
    assert state.is_ticket_state and observation_of(state, 2) is None  # not customer feedback
    bad = process_record(b'{"not": "a record"}', None, Enricher(Taxonomy.load()), RecentSet(10),
                         Topics("r", "e", "a", "d"))
    assert bad is not None and bad[0] == "dlq" and bad[3] is None  # a dead letter is not observed


def test_the_signals_bench_measures_window_id_memory_against_a_set_of_strings() -> None:
    from tests.bench.signals_stage import window_ids

    [result] = window_ids(5_000, seed=1)
    assert result.baseline_name == "a set of the id strings" and result.unit == "bytes"
    assert result.baseline is not None and 0 < result.value < result.baseline / 4


def test_a_batch_of_observations_travels_in_few_messages_and_counts_like_single_ones() -> None:
    """The enrich agent sends a batch's observations in messages of up to OBSERVATIONS_PER_MESSAGE: they
    count exactly as one message per observation did, a re-read message counts nothing twice, and a
    single-object message (written before batching) still reads."""
    from processors.signals import agent

    specs = window_specs(3600, 86400, ("category",))
    obs = [Observation(feedback_id=f"id-{i}", event_time=1_773_000_000.0 + 7 * i, partition=i % 2,
                       label=("negative", "neutral", "positive")[i % 3], polarity=(i % 3 - 1) * 0.5,
                       nps_class=None, csat=None, scopes=(("overall", "all"), ("category", "delivery")))
           for i in range(2500)]
    messages = agent.observation_messages(obs)
    assert len(messages) == 3 and [len(Observation.many_from_bytes(m)) for m in messages] == [1000, 1000, 500]
    batched, single = WindowAggregator(specs, 0.0, 2), WindowAggregator(specs, 0.0, 2)
    outcomes = [o for offset, m in enumerate(messages) for o in batched.apply_many(Observation.many_from_bytes(m),
                                                                                     offset)]
    assert outcomes.count("counted") == 2500
    assert batched.apply_many(Observation.many_from_bytes(messages[1]), 1) == ["replayed"] * 1000
    assert batched.next_offset == 3
    for offset, o in enumerate(obs):
        single.apply(Observation.from_bytes(o.to_bytes()), offset)
    assert Observation.many_from_bytes(obs[0].to_bytes()) == [obs[0]]
    close = 1_773_000_000.0 + 7 * 2500 + 2 * 86400
    by_id = {w.window_id: w.model_dump(exclude={"closed_at"}) for w in batched.force_watermark(close)}
    assert by_id and by_id == {w.window_id: w.model_dump(exclude={"closed_at"}) for w in single.force_watermark(close)}


def test_a_backlog_in_few_messages_closes_its_windows_progressively_and_in_order() -> None:
    """Messages that carry a whole batch each (a backlog of days) still move the watermark every
    ADVANCE_EVERY observations, so the windows go out oldest first in many sends rather than weeks of
    windows at once (the alert sink reads the signals topic's partitions in its own order)."""
    import asyncio

    from pipeline.topics import Topics
    from processors.signals import agent

    sent: list[list[SignalWindow]] = []

    class Out:
        async def send(self, key: bytes, value: bytes) -> asyncio.Future[None]:
            sent[-1].append(SignalWindow.model_validate_json(value))
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

    class Runner(agent.WindowsRunner):
        async def _emit(self, windows: list[SignalWindow]) -> None:
            sent.append([])
            await super()._emit(windows)

    settings = SignalSettings(signal_window="1h", signal_slow_window="1d", signal_allowed_lateness="0s")
    runner = Runner(settings, Topics("r", "e", "a", "d"), Out(), None)
    agg = WindowAggregator(runner.specs, 0.0, 1)
    obs = [Observation(feedback_id=f"b-{i}", event_time=1_773_000_000.0 + 36 * i, partition=0, label="negative",
                       polarity=-0.5, nps_class=None, csat=None, scopes=(("overall", "all"), ("product", "gadget")))
           for i in range(12_000)]  # 5 days, 100 an hour
    messages = [(m, offset) for offset, m in enumerate(agent.observation_messages(obs))]
    assert len(messages) == 12
    assert asyncio.run(runner._feed(agg, messages)) is True
    batches = [b for b in sent if b]
    assert len(batches) >= 5  # every 2,000 observations, not once at the end
    ends = [w.window_end for b in batches for w in b]
    assert ends == sorted(ends) and len(ends) == len({w.window_id for b in batches for w in b})
