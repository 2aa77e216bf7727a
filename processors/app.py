"""The faust app: agent ``feedback.raw -> feedback.enriched`` (bad records -> ``feedback.dlq``), and each
enriched record's observation -> ``feedback.signals.observations`` (:mod:`processors.signals`).

Guarantees: a batch's offsets are acknowledged only after every enriched record, observation and dead
letter of that batch was acknowledged by the broker (at-least-once); no exception for one record escapes
the agent (faust would ack and drop the message).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import faust

from pipeline import metrics
from pipeline.config import ProcessorSettings
from pipeline.errors import RecordError
from pipeline.kafka_security import client_options
from pipeline.logging import get_logger
from pipeline.schema import DeadLetter, EnrichedFeedback
from pipeline.topics import Topics
from processors.enrich import Enricher, RecentSet, content_hash, parse_raw
from processors.taxonomy import Taxonomy

log = get_logger(__name__)

APP_ID = "feedback-processor"


def faust_credentials(settings: ProcessorSettings) -> Any:
    """The same FEEDBACK_KAFKA_* security settings the other clients get (:mod:`pipeline.kafka_security`)."""
    return client_options(settings, "faust")["broker_credentials"]


def throughput_options(settings: ProcessorSettings) -> dict[str, Any]:
    """faust settings for throughput, shared with the bench's passthrough baseline.

    faust's producer defaults (no linger, 16 KiB batches) send a produce request for every few
    enriched records (~1.5 KB each): profiled on Apache Kafka, the produce requests' socket writes
    and their handling cost more of the worker than the enrichment (``docs/performance.md``). A
    batch of the agent is awaited as a whole, so a few milliseconds of linger add no latency a
    record would not wait anyway, and every partition's records go in one request.
    """
    return {"producer_linger": settings.processor_linger_ms / 1000,
            "producer_max_batch_size": settings.processor_produce_batch_bytes,
            "producer_max_request_size": max(1_000_000, settings.processor_produce_batch_bytes)}


def create_app(settings: ProcessorSettings) -> faust.App:
    """Build the faust app and register its agent."""
    topics = Topics.from_settings(settings)
    enricher = Enricher(Taxonomy.load(settings.taxonomy_file), settings.neutral_band)
    recent = RecentSet(settings.dedupe_window)
    app = faust.App(
        settings.topic_prefix + APP_ID,
        broker=[f"kafka://{h.strip()}" for h in settings.bootstrap.split(",")],
        broker_credentials=faust_credentials(settings),
        broker_session_timeout=6,
        broker_heartbeat_interval=1,
        producer_acks=-1,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        value_serializer="raw",
        key_serializer="raw",
        web_enabled=False,
        store="memory://",
        datadir=str(settings.data_dir / "faust" / str(settings.processor_worker) if settings.processor_worker
                    else settings.data_dir / "faust"),
        **throughput_options(settings),
    )
    raw = app.topic(topics.raw, key_type=bytes, value_type=bytes, value_serializer="raw",
                    key_serializer="raw", partitions=settings.topic_partitions)

    from processors.signals import register as register_signals  # degrading signals (issue 6)
    from processors.signals.agent import observation_of
    runner = register_signals(app, settings, topics)
    observed = runner.observations.get_topic_name()

    async def send(topic: str, key: bytes | None, value: bytes) -> Any:
        """Hand one message to the producer; the broker's acknowledgement is the returned future.

        Straight to faust's producer, not through ``Topic.send``: that layer (a FutureMessage, callbacks
        and a declare check per message) cost as much of the worker as the Kafka client's own sending
        (py-spy, `docs/performance.md`); partitioning by key is the same (the client's partitioner)."""
        return await app.producer.send(topic, key, value, None, None, None)

    @app.agent(raw)
    async def enrich(stream: Any) -> None:
        async for batch in stream.take_events(settings.processor_batch, within=0.05):
            started = time.perf_counter()
            futures = []
            for event in batch:
                out = process_record(event.value, event.message, enricher, recent, topics)
                if out is None:
                    continue
                kind, key, value, item = out
                futures.append(await send(topics.enriched if kind == "enriched" else topics.dlq, key, value))
                # The record's contribution to the signal windows, sent by this agent rather than by a
                # second one reading feedback.enriched back (one topic hop and one parse less per record).
                # One message per record: a batch per message closed a backlog's windows in bursts the
                # alert sink could judge out of order (docs/performance.md, 2026-12-08).
                obs = observation_of(item, int(getattr(event.message, "partition", 0) or 0)) if item else None
                if obs is not None:
                    futures.append(await send(observed, key, obs.to_bytes()))
            # At-least-once: the batch's offsets are acked when the next batch is taken, so we
            # wait for the broker's acks of everything this batch produced first.
            if futures:
                await asyncio.gather(*futures)
            metrics.BATCH_SECONDS.labels("processor").observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.labels("processor").observe(len(batch))

    return app


def process_one(
    value: bytes | None, message: Any, enricher: Enricher, recent: RecentSet, topics: Topics
) -> tuple[str, bytes | None, bytes] | None:
    """One raw message -> ('enriched'|'dlq', key, value), or None for an exact re-delivery."""
    out = process_record(value, message, enricher, recent, topics)
    return None if out is None else out[:3]


def process_record(
    value: bytes | None, message: Any, enricher: Enricher, recent: RecentSet, topics: Topics
) -> tuple[str, bytes | None, bytes, EnrichedFeedback | None] | None:
    """:func:`process_one` plus the enriched record itself (None for a dead letter)."""
    record = None
    try:
        if value is None:
            raise RecordError("empty_message", "the message has no value")
        record = parse_raw(value)
        if recent.seen(content_hash(record)):
            metrics.DUPLICATES.inc()
            return None
        result = enricher.enrich(record)
        metrics.PROCESSED.labels(record.source).inc()
        return "enriched", result.key, result.model_dump_json().encode(), result
    except Exception as exc:  # one bad record never stops the stream
        reason = exc.reason if isinstance(exc, RecordError) else "processing_error"
        detail = exc.detail if isinstance(exc, RecordError) else repr(exc)[:2000]
        if not isinstance(exc, RecordError):
            log.exception("enrichment failed", feedback_id=str(record.feedback_id) if record else None)
        letter = DeadLetter.for_payload(
            value,
            stage="processor",
            reason=reason,
            detail=detail,
            source=record.source if record else None,
            feedback_id=record.feedback_id if record else None,
            topic=getattr(message, "topic", topics.raw),
            partition=getattr(message, "partition", None),
            offset=getattr(message, "offset", None),
        )
        metrics.DEAD_LETTERED.labels("processor", reason).inc()
        return "dlq", letter.key_bytes(), letter.model_dump_json().encode(), None


def run_worker(settings: ProcessorSettings) -> None:
    """Run the faust worker in this process until SIGINT/SIGTERM."""
    import sys
    import threading

    from pipeline.topics import ensure_topics

    started = threading.Event()  # /readyz: topics provisioned, app built, and the broker reachable
    metrics.serve(settings.processor_metrics_port, host=settings.metrics_host,
                  ready=lambda: started.is_set() and metrics.broker_reachable(settings.bootstrap))
    ensure_topics(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)  # faust's datadir lives in it
    app = create_app(settings)
    started.set()
    level = "debug" if settings.log_level == "DEBUG" else "warning"
    worker = faust.Worker(app, loglevel=level, quiet=True)
    # No terminal spinner: with it faust sets the root logger to DEBUG, so every debug call in
    # faust/aiokafka builds a LogRecord that is then dropped (5-9% of the worker's CPU, `make bench`).
    worker.spinner = None
    # faust runs the Kafka consumer in a second thread; with the default 5 ms GIL switch interval
    # the enrichment loop stalls behind it after every socket write (+~30% records/s at 1 ms).
    sys.setswitchinterval(0.001)
    worker.execute_from_commandline()
