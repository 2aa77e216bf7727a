"""The faust app: agent ``feedback.raw -> feedback.enriched`` (bad records -> ``feedback.dlq``).

Guarantees: a batch's offsets are acknowledged only after every enriched record and dead letter
of that batch was acknowledged by the broker (at-least-once); no exception for one record escapes
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
from pipeline.schema import DeadLetter
from pipeline.topics import Topics, TopicWatch
from processors.enrich import Enricher, RecentSet, content_hash, parse_raw
from processors.taxonomy import Taxonomy

log = get_logger(__name__)

APP_ID = "feedback-processor"
#: How long a recreated topic waits for this worker to hold one of its partitions to rewind (seconds).
PENDING_REWIND_SECONDS = 120.0


def faust_credentials(settings: ProcessorSettings) -> Any:
    """The same FEEDBACK_KAFKA_* security settings the other clients get (:mod:`pipeline.kafka_security`)."""
    return client_options(settings, "faust")["broker_credentials"]


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
    )
    raw = app.topic(topics.raw, key_type=bytes, value_type=bytes, value_serializer="raw",
                    key_serializer="raw", partitions=settings.topic_partitions)
    enriched = app.topic(topics.enriched, value_serializer="raw", key_serializer="raw",
                         partitions=settings.topic_partitions)
    dlq = app.topic(topics.dlq, value_serializer="raw", key_serializer="raw",
                    partitions=settings.topic_partitions)

    @app.agent(raw)
    async def enrich(stream: Any) -> None:
        async for batch in stream.take_events(settings.processor_batch, within=0.05):
            started = time.perf_counter()
            futures = []
            for event in batch:
                out = process_one(event.value, event.message, enricher, recent, topics)
                if out is None:
                    continue
                topic = enriched if out[0] == "enriched" else dlq
                futures.append(await topic.send(key=out[1], value=out[2]))
            # At-least-once: the batch's offsets are acked when the next batch is taken, so we
            # wait for the broker's acks of everything this batch produced first.
            if futures:
                await asyncio.gather(*futures)
            metrics.BATCH_SECONDS.labels("processor").observe(time.perf_counter() - started)
            metrics.BATCH_SIZE.labels("processor").observe(len(batch))

    from processors.signals import register as register_signals  # degrading signals (issue 6)
    from processors.signals.agent import SignalTopicNames
    runner = register_signals(app, settings, topics)

    signal_names = SignalTopicNames.of(topics)
    # Only the signal agents' own single-partition topics are re-created here (see TopicWatch).
    watch = TopicWatch(settings, [topics.raw, topics.enriched],
                       provision={signal_names.observations: 1, signal_names.checkpoints: 1})
    # The ids the consumer starts on, read before it starts: a broker that restarts before the first
    # tick is then noticed at that tick. Without them the first tick took the recreated topics' ids
    # as the originals and nothing was rewound (records below the old positions were skipped).
    watch.check()

    pending: dict[str, float] = {}  # recreated topic -> when it was noticed (kept until rewound)
    watching = {"watch": watch}

    @app.timer(interval=settings.topic_watch_seconds)
    async def rewind_recreated_topics() -> None:
        """A topic recreated under us (the broker restarted empty) is re-read from offset 0 (see TopicWatch).

        Never during a rebalance: faust runs its rebalance callbacks on the consumer thread too, and a
        seek of partitions that are being revoked would stall it; the rewind waits for the next tick.
        A tick never raises and never waits long: an exception would end faust's timer for good, and
        a hung check would stop the rewinds, either way leaving the processor at its old positions."""
        current = watching["watch"]
        try:
            changed = await asyncio.wait_for(asyncio.get_running_loop().run_in_executor(None, current.check),
                                             timeout=max(10.0, 5 * settings.topic_watch_seconds))
        except TimeoutError:
            log.warning("topic watch check timed out: starting a new one (the ids seen so far are kept)")
            watching["watch"] = current.renewed()
            return
        except Exception:
            log.exception("topic watch check failed; trying again at the next tick")
            return
        now = time.monotonic()
        for topic in changed:
            pending.setdefault(topic, now)
        if pending and not app.rebalancing:
            rewound = await rewind(app.consumer, set(pending), on_rewound=runner.on_revoked)
            for topic in {tp.topic for tp in rewound}:
                del pending[topic]
            # A topic none of whose partitions this worker holds (between a revoke and the next
            # assignment, or more workers than partitions) waits for a later tick, for a while: its
            # next owner starts from the offsets committed on the recreated topic.
            for topic, noticed in list(pending.items()):
                if now - noticed > PENDING_REWIND_SECONDS:
                    log.warning("recreated topic not rewound: this worker holds none of its partitions", topic=topic)
                    del pending[topic]

    return app


async def rewind(consumer: Any, changed: set[str], on_rewound: Any = None) -> set[Any]:
    """Seek faust's consumer to offset 0 on its partitions of the ``changed`` topics and forget what it
    remembers of them: the read offset (below which faust drops messages), the acked and committed
    offsets (so the commits may go back to the new topic's offsets) and the gaps; faust forgets the same
    on a revoke."""
    tps = {tp for tp in consumer.assignment() if tp.topic in changed}
    if not tps:
        return tps
    for attr in ("_gap", "_acked", "_acked_index", "_read_offset", "_committed_offset"):
        remembered = getattr(consumer, attr, None)
        if remembered is not None:
            for tp in tps:
                remembered.pop(tp, None)
    if on_rewound is not None:
        on_rewound(tps)  # the signal windows rebuild their state from the recreated topic
    await consumer.seek_wait({tp: 0 for tp in tps})
    log.warning("rewound recreated topics to offset 0", partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in tps))
    return tps


def process_one(
    value: bytes | None, message: Any, enricher: Enricher, recent: RecentSet, topics: Topics
) -> tuple[str, bytes | None, bytes] | None:
    """One raw message -> ('enriched'|'dlq', key, value), or None for an exact re-delivery."""
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
        return "enriched", result.key, result.model_dump_json().encode()
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
        return "dlq", letter.key_bytes(), letter.model_dump_json().encode()


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
