"""The warehouse sink: consumes ``feedback.enriched`` and writes batches, committing offsets after the DB.

Guarantees: an offset is committed only after the transaction holding its record committed
(at-least-once); the upsert makes redelivery harmless (nothing counted twice); a record that cannot
be decoded goes to ``feedback.dlq`` with its reason; a database outage is retried with backoff
without losing the batch.
"""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError

from pipeline import metrics
from pipeline.config import SinkSettings
from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.schema import DeadLetter, EnrichedFeedback
from pipeline.topics import RecreatedTopicGuard, Topics, commit_processed, ensure_topics, poll_through_outage
from sinks.warehouse.db import explain, make_engine, migrate
from sinks.warehouse.writer import WarehouseWriter

log = get_logger(__name__)

GROUP_ID = "feedback-warehouse-sink"


class WarehouseSink:
    """Consumer loop of the warehouse sink; :meth:`stop` ends it after the current batch."""

    def __init__(self, settings: SinkSettings) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.engine = make_engine(settings.database_url)
        self.writer = WarehouseWriter(self.engine)
        self._stop = threading.Event()
        self._consumer: KafkaConsumer | None = None
        self._publisher: Publisher | None = None

    def stop(self, *_: Any) -> None:
        self._stop.set()

    def _connect(self) -> KafkaConsumer:
        return KafkaConsumer(
            self.topics.enriched,
            bootstrap_servers=self.settings.bootstrap,
            group_id=self.settings.topic_prefix + GROUP_ID,
            client_id="feedback-warehouse-sink",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=self.settings.sink_batch_size,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            max_poll_interval_ms=300_000,
            **self.settings.kafka_client_options(),
        )

    def _migrate_with_retry(self) -> None:
        """Migrations at start-up; a database that is down (or read-only) is waited for, not crashed on."""
        delay = 0.5
        while True:
            try:
                migrate(self.engine)
                return
            except OperationalError as exc:
                self.engine.dispose()
                message = explain(self.engine, exc)
                metrics.SINK_ERRORS.labels(error_kind(message)).inc()
                log.warning("warehouse not available at start-up; retrying", error=message, retry_in=delay)
                if self._stop.wait(delay):
                    raise SystemExit(1) from exc
                delay = min(delay * 2, self.settings.sink_max_backoff_seconds)

    def run(self) -> None:
        self._migrate_with_retry()
        ensure_topics(self.settings)
        self._publisher = Publisher(self.settings, client_id="feedback-warehouse-sink-dlq")
        self._consumer = self._connect()
        guard = RecreatedTopicGuard(self.settings, self._consumer, [self.topics.enriched])
        log.info("warehouse sink started", url=self.engine.url.render_as_string(hide_password=True),
                 topic=self.topics.enriched)
        try:
            while not self._stop.is_set():
                batch = self._collect()
                rewound = guard.rewound()  # the broker lost the topic: its offsets start again at 0
                if batch:
                    self._handle(batch, commit=not rewound)
        finally:
            guard.close()
            self._consumer.close(autocommit=False)
            self._publisher.close()
            self.engine.dispose()

    def _collect(self) -> list[Any]:
        """Poll until the batch is full or the time bound passed."""
        assert self._consumer is not None
        batch: list[Any] = []
        deadline = time.monotonic() + self.settings.sink_batch_ms / 1000
        while len(batch) < self.settings.sink_batch_size and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0 and batch:
                break
            polled = poll_through_outage(
                self._consumer,
                timeout_ms=max(1, int(remaining * 1000)) if batch else 500,
                max_records=self.settings.sink_batch_size - len(batch),
            )
            for records in polled.values():
                batch.extend(records)
            if not batch and remaining <= 0:
                break  # idle: back to the loop, which checks the topics (RecreatedTopicGuard)
        return batch

    def _handle(self, batch: list[Any], commit: bool = True) -> None:
        assert self._consumer is not None and self._publisher is not None
        started = time.perf_counter()
        items: list[EnrichedFeedback] = []
        letters: list[DeadLetter] = []
        for msg in batch:
            try:
                items.append(EnrichedFeedback.model_validate_json(msg.value))
            except (ValidationError, ValueError, TypeError) as exc:
                letters.append(DeadLetter.for_payload(
                    msg.value, stage="sink", reason="invalid_enriched_record", detail=str(exc)[:2000],
                    topic=msg.topic, partition=msg.partition, offset=msg.offset,
                ))
        if letters:
            self._publisher.dead_letter(letters)
        self._write_with_retry(items)
        now = datetime.now(UTC)
        for item in items:
            metrics.END_TO_END.observe(max(0.0, (now - item.received_at).total_seconds()))
            metrics.EVENT_TO_WRITE.observe(max(0.0, (now - item.event_time).total_seconds()))
        if commit:
            self._commit(batch)
        metrics.BATCH_SECONDS.labels("sink").observe(time.perf_counter() - started)
        metrics.BATCH_SIZE.labels("sink").observe(len(batch))

    def _write_with_retry(self, items: list[EnrichedFeedback]) -> None:
        delay = 0.5
        while True:
            try:
                written = self.writer.write(items)
                metrics.WRITTEN.labels("feedback").inc(written)
                return
            except TransientError as exc:
                metrics.SINK_ERRORS.labels(error_kind(str(exc))).inc()
                wait = max(delay, exc.retry_after or 0)
                log.warning("warehouse write failed; retrying", error=str(exc), retry_in=wait)
                if self._stop.wait(wait):
                    raise SystemExit(1) from exc  # stopping: offsets stay uncommitted, nothing lost
                delay = min(delay * 2, self.settings.sink_max_backoff_seconds)

    def _commit(self, batch: list[Any]) -> None:
        assert self._consumer is not None
        error = commit_processed(self._consumer, batch)
        if error:
            log.warning("offset commit failed; records will be redelivered", error=error)


def error_kind(message: str) -> str:
    """A label for the sink-error counter, so an alert can say what to fix."""
    text = message.lower()
    if "disk is full" in text or "no space left" in text:
        return "disk_full"
    if "readonly" in text or "read-only" in text:
        return "read_only"
    return "unavailable"


def run(settings: SinkSettings) -> None:
    sink = WarehouseSink(settings)
    signal.signal(signal.SIGTERM, sink.stop)
    signal.signal(signal.SIGINT, sink.stop)
    # /readyz: migrated, consuming (the consumer exists) and the broker reachable
    metrics.serve(settings.sink_metrics_port, host=settings.metrics_host,
                  ready=lambda: sink._consumer is not None and metrics.broker_reachable(settings.bootstrap))
    sink.run()
