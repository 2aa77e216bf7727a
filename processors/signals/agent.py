"""The signal windows, added to the processor's faust app by :func:`register`.

    feedback.raw --[enrich agent: enrichment + observation]--> feedback.enriched
                                                          \\--> feedback.signals.observations (1 partition)
        --[signals-windows: event-time windows, per-partition watermark]--> feedback.signals
                                                  \\--> feedback.signals.checkpoints (1 partition)

The enrich agent (:mod:`processors.app`) turns each enriched record into a small :class:`Observation`
itself (:func:`observation_of`; ticket-state records are skipped) and sends it with the enriched record:
its raw offsets are acknowledged only after both were acknowledged by the broker, so every enriched
record is observed at least once (the windows count a feedback id once per window). Until 2026-12 a
separate ``signals-observe`` agent read ``feedback.enriched`` back, parsed every record again and sent
the observation: a second topic hop that cost more CPU per record than any step of the enrichment but
the sentiment model. The observations topic has one partition, so one worker sees every scope's
records in one deterministic order, however many workers run. An observation's partition (the
watermark's unit) is the ``feedback.raw`` partition the record was read from.

State and restarts: faust windowed tables are not used (their window-close callbacks are lost on a
crash or rebalance, faust-streaming/faust#193, #385; and the embedded broker cannot be trusted with
changelog recovery). The window state instead lives in memory and is *derived*: every batch that
closes windows (and at most every ``FEEDBACK_SIGNAL_CHECKPOINT_SECONDS`` otherwise) a checkpoint of
a few numbers is produced, alone, to a one-partition topic; on start the agent reads the last one
and replays the observations topic from its resume offset up to where faust resumes, which rebuilds
exactly the open windows. See :mod:`processors.signals.windows` for why any checkpoint is valid.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from pipeline import metrics
from pipeline.config import CommonSettings, load
from pipeline.kafka_security import client_options
from pipeline.logging import get_logger
from pipeline.schema import EnrichedFeedback
from pipeline.signal_config import SignalSettings
from pipeline.signal_schema import SignalWindow
from pipeline.topics import Topics
from processors.signals.windows import Observation, WindowAggregator, window_specs

log = get_logger(__name__)

WINDOWS_AGENT = "feedback-signals-windows"


@dataclass(frozen=True)
class SignalTopicNames:
    observations: str
    checkpoints: str

    @classmethod
    def of(cls, topics: Topics) -> SignalTopicNames:
        return cls(observations=topics.signals + ".observations", checkpoints=topics.signals + ".checkpoints")


def aiokafka_options(settings: CommonSettings) -> dict[str, Any]:
    """Security options of :class:`CommonSettings` in aiokafka's terms (:mod:`pipeline.kafka_security`)."""
    return client_options(settings, "aiokafka")


#: Observations per message of the observations topic: a batch of the enrich agent is sent in messages
#: of at most this many (~250 bytes each), well under any broker's default message size limit (1 MB).
OBSERVATIONS_PER_MESSAGE = 1000


#: Observations applied between two moves of the watermark (see :meth:`WindowsRunner._feed`).
ADVANCE_EVERY = 2000


def observation_of(item: EnrichedFeedback, partition: int) -> Observation | None:
    """What one enriched record contributes to the windows; None for a ticket-state record (a status
    change, not customer feedback). ``partition``: the raw partition the record was read from."""
    if item.is_ticket_state:
        metrics.SIGNAL_OBSERVATIONS.labels("skipped").inc()
        return None
    return Observation.from_enriched(item, partition=partition)


def observation_messages(observations: list[Observation]) -> list[bytes]:
    """The values of the messages that carry these observations (one per :data:`OBSERVATIONS_PER_MESSAGE`)."""
    step = OBSERVATIONS_PER_MESSAGE
    return [Observation.many_to_bytes(observations[i:i + step]) for i in range(0, len(observations), step)]


class WindowsRunner:
    """Owns the window state of the one observations partition: init, replay, apply, emit, checkpoint.

    Guarantees: closed windows are acknowledged by the broker before the checkpoint that no longer
    covers them is written; a (re)start replays from the last checkpoint, so every open window is
    rebuilt from all its records; the state is dropped when the partition is revoked.
    """

    def __init__(self, settings: SignalSettings, topics: Topics, out_topic: Any, ckpt_topic: Any) -> None:
        self.settings = settings
        self.topics = topics
        self.names = SignalTopicNames.of(topics)
        self.out_topic = out_topic
        self.ckpt_topic = ckpt_topic
        self.specs = window_specs(settings.signal_window, settings.signal_slow_window, settings.signal_slow_scopes)
        self.lock = asyncio.Lock()
        self.agg: WindowAggregator | None = None
        self.last_arrival = time.monotonic()
        self.last_checkpoint = 0.0
        self.checkpointed_next = -1
        self.observations: Any = None  # the observations topic (set by :func:`register`)

    def _consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.settings.bootstrap, enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest", **aiokafka_options(self.settings))

    async def handle(self, events: list[Any]) -> None:
        async with self.lock:
            try:
                if self.agg is None:
                    await self._init(events[0].message.offset)
                agg = self.agg
                assert agg is not None
                closed = await self._feed(agg, [(e.value, e.message.offset) for e in events])
                self.last_arrival = time.monotonic()
                await self._checkpoint(agg, force=closed)
            except Exception:  # never kill the agent: drop the state; the next batch replays from the checkpoint
                log.exception("signal windows failed; rebuilding from the last checkpoint")
                self.agg = None
                await asyncio.sleep(1.0)

    def on_revoked(self, revoked: set[Any]) -> None:
        if any(tp.topic == self.names.observations for tp in revoked):
            log.info("signal windows partition revoked; state dropped (rebuilt on reassignment)")
            self.agg = None

    async def idle_tick(self) -> None:
        """Close the windows of a live stream that went quiet, by the wall clock."""
        async with self.lock:
            agg = self.agg
            if agg is None or not agg.open or time.monotonic() - self.last_arrival < self.settings.signal_idle_close:
                return
            now = time.time()
            horizon = min(s.seconds for s in self.specs) + self.settings.signal_allowed_lateness
            if now - agg.max_event_time > horizon:
                return  # not a live stream (a paused backfill): wait for records
            closed = agg.force_watermark(now - self.settings.signal_allowed_lateness)
            if closed:
                log.info("idle stream: windows closed by the wall clock", windows=len(closed))
                await self._emit(closed)
                await self._checkpoint(agg, force=True)

    # -- internals ------------------------------------------------------------------------------
    async def _feed(self, agg: WindowAggregator, messages: Sequence[tuple[bytes | None, int]]) -> bool:
        """Apply messages (value, offset), moving the watermark and emitting the windows it closes every
        :data:`ADVANCE_EVERY` observations; True when any window closed.

        A backlog (a message carries a whole batch of the enrich agent) would otherwise close weeks of
        windows at once, and the alert sink, reading the signals topic's partitions in its own order,
        could judge a product's daily window before the category windows of the same days."""
        closed, pending = False, 0
        for value, offset in messages:
            pending += self._apply(agg, value, offset)
            if pending >= ADVANCE_EVERY:
                windows = agg.advance()
                await self._emit(windows)
                closed, pending = closed or bool(windows), 0
        windows = agg.advance()
        await self._emit(windows)
        return closed or bool(windows)

    def _apply(self, agg: WindowAggregator, value: bytes | None, offset: int) -> int:
        """Apply one message; returns how many observations it held."""
        try:
            observations = Observation.many_from_bytes(value or b"")
        except (ValueError, KeyError, TypeError) as exc:
            log.error("unreadable observation skipped", offset=offset, error=str(exc)[:200])
            metrics.SIGNAL_OBSERVATIONS.labels("invalid").inc()
            agg.next_offset = max(agg.next_offset, offset + 1)
            return 0
        for outcome, n in Counter(agg.apply_many(observations, offset)).items():
            metrics.SIGNAL_OBSERVATIONS.labels(outcome).inc(n)
        return len(observations)

    async def _emit(self, windows: list[SignalWindow]) -> None:
        if not windows:
            return
        futures = []
        for w in windows:
            futures.append(await self.out_topic.send(key=w.key_bytes(), value=w.model_dump_json().encode()))
            metrics.SIGNAL_WINDOWS_CLOSED.labels(w.scope_type).inc()
        await asyncio.gather(*futures)
        if self.agg is not None and self.agg.watermark > 0:
            metrics.SIGNAL_WATERMARK.set(self.agg.watermark)

    async def _checkpoint(self, agg: WindowAggregator, force: bool = False) -> None:
        due = time.monotonic() - self.last_checkpoint >= self.settings.signal_checkpoint_seconds
        if agg.next_offset == self.checkpointed_next or not (force or due):
            return
        # Sent alone and awaited: a batch of one, whose end offset even the embedded broker reports right.
        fut = await self.ckpt_topic.send(key=b"checkpoint", value=json.dumps(agg.checkpoint()).encode())
        await fut
        self.last_checkpoint = time.monotonic()
        self.checkpointed_next = agg.next_offset

    async def _init(self, first_offset: int) -> None:
        await self.ckpt_topic.maybe_declare()
        checkpoint, partitions = await self._read_checkpoint()
        agg = WindowAggregator.restore(checkpoint, self.specs, self.settings.signal_allowed_lateness, partitions)
        self.agg = agg
        log.info("signal windows starting", checkpoint=checkpoint, first_offset=first_offset,
                 raw_partitions=partitions)
        if first_offset > agg.next_offset:
            await self._replay(agg, agg.next_offset, first_offset)

    async def _read_checkpoint(self) -> tuple[dict[str, Any] | None, int | None]:
        consumer = self._consumer()
        await consumer.start()
        try:
            parts = None  # an observation's partition is raw's; unknown, the watermark could pass a silent one
            for _ in range(20):
                await consumer.topics()  # refresh metadata
                parts = consumer.partitions_for_topic(self.topics.raw)
                if parts:
                    break
                await asyncio.sleep(0.5)
            if not parts:
                log.warning("raw topic's partitions unknown; the watermark follows the partitions seen so far")
            tp = TopicPartition(self.names.checkpoints, 0)
            consumer.assign([tp])
            end = (await consumer.end_offsets([tp]))[tp]
            if end == 0:
                return None, len(parts) if parts else None
            consumer.seek(tp, end - 1)
            last = None
            deadline = time.monotonic() + 15
            while last is None and time.monotonic() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                records = batch.get(tp, [])
                if records:
                    last = records[-1]
            checkpoint = json.loads(last.value) if last is not None and last.value else None
            return checkpoint, len(parts) if parts else None
        finally:
            await consumer.stop()

    async def _replay(self, agg: WindowAggregator, start: int, stop: int) -> None:
        """Re-apply observations ``[start, stop)`` (faust delivers from ``stop`` on)."""
        consumer = self._consumer()
        await consumer.start()
        replayed = 0
        try:
            tp = TopicPartition(self.names.observations, 0)
            consumer.assign([tp])
            consumer.seek(tp, start)
            idle_since = time.monotonic()
            while agg.next_offset < stop:
                batch = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                records = [r for r in batch.get(tp, []) if r.offset < stop]
                if not records:
                    if time.monotonic() - idle_since > 30:
                        log.warning("replay stalled; continuing without the rest", at=agg.next_offset, stop=stop)
                        break
                    continue
                idle_since = time.monotonic()
                await self._feed(agg, [(r.value, r.offset) for r in records])
                replayed += len(records)
                if records[-1].offset >= stop - 1:
                    break
        finally:
            await consumer.stop()
        log.info("signal windows rebuilt by replay", replayed=replayed, start=start, stop=stop,
                 open_windows=len(agg.open))


def register(app: Any, settings: Any, topics: Topics) -> WindowsRunner:
    """Add the windows agent and its idle timer to the processor's faust ``app``; the enrich agent sends
    the observations to :attr:`WindowsRunner.observations`."""
    sig = settings if isinstance(settings, SignalSettings) else load(SignalSettings)
    names = SignalTopicNames.of(topics)
    raw = {"value_serializer": "raw", "key_serializer": "raw"}
    observations = app.topic(names.observations, partitions=1, internal=True, **raw)
    out = app.topic(topics.signals, **raw)
    checkpoints = app.topic(names.checkpoints, partitions=1, internal=True, **raw)
    runner = WindowsRunner(sig, topics, out, checkpoints)
    runner.observations = observations

    async def signals_windows(stream: Any) -> None:
        async for events in stream.take_events(2000, within=0.2):
            await runner.handle(events)

    async def signals_idle() -> None:
        await runner.idle_tick()

    async def on_revoked(_sender: Any, revoked: set[Any], **_: Any) -> None:
        runner.on_revoked(revoked)

    app.agent(observations, name=WINDOWS_AGENT)(signals_windows)
    app.timer(interval=max(1.0, min(30.0, sig.signal_idle_close / 5)))(signals_idle)
    app.on_partitions_revoked.connect(on_revoked)
    return runner
