"""The sink contract and the sink runner: a topic -> a durable store, offsets committed after the write.

A **sink** says only what is particular to it: :meth:`Sink.setup` (migrations, connections),
:meth:`Sink.decode` (bytes -> item; a failure is a dead letter), :meth:`Sink.write` (one durable,
idempotent transaction for the whole batch, which may refuse individual items and return them as
:class:`Rejected` with their reasons) and :meth:`Sink.close`. The :class:`SinkRunner` owns the rest:
polling, decode-or-dead-letter, retry with backoff, dead-lettering the rejected items, and the
offset commit after the write.

Guarantees of :class:`SinkRunner` (at-least-once, nothing counted twice when ``write`` is idempotent):

- an offset is committed only after :meth:`Sink.write` returned for the batch holding its record
  and after every dead letter of the batch (undecodable or rejected items) was acknowledged by the
  broker;
- a :class:`~pipeline.errors.TransientError` from ``setup``, ``write`` or the dead-letter publish is
  retried with the :class:`~pipeline.retry.RetryPolicy` (never sooner than its ``retry_after``)
  without losing the batch; any other exception stops the runner;
- a record that cannot be decoded or that ``write`` rejects goes to ``feedback.dlq`` with the sink's
  stage, the reason and the original bytes, and is counted; the rest of the batch goes on;
- :meth:`SinkRunner.stop` ends the loop after the batch in hand; stopping while a retry waits raises
  ``SystemExit(1)`` with the batch's offsets uncommitted (it is read again after a restart).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from kafka import KafkaConsumer
from pydantic import BaseModel, ValidationError

from pipeline import metrics
from pipeline.config import CommonSettings
from pipeline.errors import RecordError, TransientError
from pipeline.logging import get_logger
from pipeline.retry import Backoff, RetryPolicy
from pipeline.schema import DeadLetter
from pipeline.sources import Publisher
from pipeline.topics import commit_processed, poll_through_outage

log = get_logger(__name__)

T = TypeVar("T")


class Message(Protocol):
    """A consumed record as kafka-python's ``ConsumerRecord`` has it."""

    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class Rejected:
    """An item :meth:`Sink.write` refused: its position in the batch it was given, and why."""

    index: int
    reason: str
    detail: str = ""


class SinkInput(Protocol):
    """Where a sink's records come from (a Kafka consumer group, or a list in tests)."""

    def poll(self, timeout_ms: int, max_records: int) -> list[Message]: ...

    def commit(self, batch: Sequence[Message]) -> str | None:
        """Commit past every message of ``batch``; None, or why the commit failed (redelivery follows)."""
        ...

    def close(self) -> None: ...


class Sink(Generic[T]):
    """Base of sinks. Subclasses set ``name`` (the dead letters' stage and the metrics label),
    ``label`` (how logs name the store), ``model`` (or override :meth:`decode`) and implement
    :meth:`write`. Guarantee asked of :meth:`write`: one transaction for the batch, idempotent
    (writing the same items again changes nothing), TransientError for what may pass."""

    name: ClassVar[str] = "sink"
    label: ClassVar[str] = "sink"
    model: ClassVar[type[BaseModel] | None] = None
    invalid_reason: ClassVar[str] = "invalid_record"

    def setup(self) -> None:
        """Prepare the store (migrations, tables); TransientError is retried."""

    def decode(self, value: bytes) -> T:
        """One item from its bytes; ValueError, ValidationError, TypeError or RecordError -> dead letter."""
        if self.model is None:
            raise NotImplementedError("set Sink.model or override decode")
        return self.model.model_validate_json(value)  # type: ignore[return-value]

    def write(self, items: Sequence[T]) -> Sequence[Rejected]:
        raise NotImplementedError

    def error_kind(self, exc: TransientError) -> str:
        """The ``feedback_sink_errors_total{kind}`` label of a failed write or setup."""
        return "unavailable"

    def tick(self) -> None:
        """Periodic work between batches (called after every turn of the loop, with or without a batch,
        on the runner's thread); it must not raise."""

    def close(self) -> None:
        """Release the store's connections."""


@dataclass
class SinkHealth:
    """What the runner reports: ready once set up and consuming."""

    ready: bool = False
    batches: int = 0
    written: int = 0
    dead_letters: int = 0
    last_error: str | None = None


class SinkRunner(Generic[T]):
    """Runs one :class:`Sink` on one :class:`SinkInput` (guarantees: see the module docstring)."""

    def __init__(self, sink: Sink[T], open_input: Callable[[], SinkInput], publisher: Publisher,
                 batch_size: int = 500, batch_ms: int = 200, retry: RetryPolicy | None = None) -> None:
        self.sink, self.open_input, self.publisher = sink, open_input, publisher
        self.batch_size, self.batch_ms = batch_size, batch_ms
        self.retry = retry or RetryPolicy(first=0.5, maximum=30.0)
        self.health = SinkHealth()
        self.input: SinkInput | None = None
        self._stop = threading.Event()

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def ready(self) -> bool:
        return self.health.ready

    def run(self) -> None:
        """Set up, then consume until :meth:`stop`."""
        try:
            self._retrying("setup", self.sink.setup, f"{self.sink.label} not available at start-up; retrying")
            self.input = self.open_input()
            self.health.ready = True
            while not self._stop.is_set():
                batch = self._collect()
                if batch:
                    self.handle(batch)
                self.sink.tick()
        finally:
            self.health.ready = False
            if self.input is not None:
                self.input.close()
            self.sink.close()

    def _collect(self) -> list[Message]:
        """Poll until the batch is full or ``batch_ms`` passed since the first poll."""
        assert self.input is not None
        batch: list[Message] = []
        deadline = time.monotonic() + self.batch_ms / 1000
        while len(batch) < self.batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and batch:
                break
            batch.extend(self.input.poll(max(1, int(remaining * 1000)) if batch else 500,
                                         self.batch_size - len(batch)))
            if not batch and remaining <= 0:
                break  # idle: back to the loop (which asks the input whether the topic was recreated)
        return batch

    def handle(self, batch: Sequence[Message], commit: bool = True) -> None:
        """Decode, dead-letter what cannot be used, write, dead-letter the rejects, then commit."""
        started = time.perf_counter()
        items, sources, letters = self._decode(batch)
        rejected: Sequence[Rejected] = []
        if items:
            rejected = self._retrying("write", lambda: self.sink.write(items),
                                      f"{self.sink.label} write failed; retrying")
        letters += [self._letter(sources[r.index], r.reason, r.detail) for r in rejected]
        if letters:
            self._retrying("dead_letter", lambda: self.publisher.dead_letter(letters),
                           "dead letters not acknowledged; retrying")
        if commit and self.input is not None:
            error = self.input.commit(batch)
            if error:
                log.warning("offset commit failed; records will be redelivered", sink=self.sink.name, error=error)
        self.health.batches += 1
        self.health.written += len(items) - len(rejected)
        self.health.dead_letters += len(letters)
        metrics.BATCH_SECONDS.labels(self.sink.name).observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels(self.sink.name).observe(len(batch))

    def _decode(self, batch: Sequence[Message]) -> tuple[list[T], list[Message], list[DeadLetter]]:
        items: list[T] = []
        sources: list[Message] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            try:
                items.append(self.sink.decode(msg.value))
                sources.append(msg)
            except RecordError as exc:
                letters.append(self._letter(msg, exc.reason, exc.detail))
            except (ValidationError, ValueError, TypeError) as exc:
                letters.append(self._letter(msg, self.sink.invalid_reason, str(exc)))
        return items, sources, letters

    def _letter(self, msg: Message, reason: str, detail: str) -> DeadLetter:
        return DeadLetter.for_payload(msg.value, stage=self.sink.name, reason=reason, detail=detail[:2000],
                                      topic=msg.topic, partition=msg.partition, offset=msg.offset)

    def _retrying(self, what: str, call: Callable[[], Any], message: str) -> Any:
        backoff: Backoff = self.retry.backoff()
        while True:
            try:
                return call()
            except TransientError as exc:
                self.health.last_error = str(exc)[:500]
                metrics.SINK_ERRORS.labels(self.sink.error_kind(exc) if what != "dead_letter" else "dlq").inc()
                delay = backoff.next(exc.retry_after)
                log.warning(message, sink=self.sink.name, error=str(exc)[:300], retry_in=round(delay, 2))
                if self._stop.wait(delay):
                    raise SystemExit(1) from exc  # stopping: offsets stay uncommitted, nothing lost


class KafkaInput:
    """A :class:`SinkInput` on a kafka-python consumer group (manual commits, earliest offset).

    Guarantees: a broker that cannot be reached is answered as an empty poll (the runner keeps
    going). A broker that restarts empty (the embedded one) is not handled here: ``feedback up``
    restarts the sinks after it (:mod:`pipeline.supervisor`).
    """

    def __init__(self, settings: CommonSettings, topic: str, group_id: str, client_id: str,
                 max_poll_records: int) -> None:
        self.consumer = KafkaConsumer(
            topic, bootstrap_servers=settings.bootstrap, group_id=settings.topic_prefix + group_id,
            client_id=client_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=max_poll_records, session_timeout_ms=6000, heartbeat_interval_ms=1000,
            max_poll_interval_ms=300_000, **settings.kafka_client_options(),
        )

    def poll(self, timeout_ms: int, max_records: int) -> list[Message]:
        polled = poll_through_outage(self.consumer, timeout_ms=timeout_ms, max_records=max_records)
        return [m for records in polled.values() for m in records]

    def commit(self, batch: Sequence[Message]) -> str | None:
        return commit_processed(self.consumer, list(batch))

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def serve_until_stopped(runner: SinkRunner[Any], publisher: Any, settings: CommonSettings, metrics_port: int) -> None:
    """Run a sink process: SIGTERM/SIGINT stop the runner, ``/metrics`` and ``/readyz`` (set up, consuming,
    the broker reachable) are served on ``metrics_port``, and the dead-letter publisher is closed at the end."""
    import signal

    signal.signal(signal.SIGTERM, runner.stop)
    signal.signal(signal.SIGINT, runner.stop)
    metrics.serve(metrics_port, host=settings.metrics_host,
                  ready=lambda: runner.ready() and metrics.broker_reachable(settings.bootstrap))
    try:
        runner.run()
    finally:
        publisher.close()
