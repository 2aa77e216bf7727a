"""Topic names and idempotent provisioning."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

from pipeline.config import CommonSettings
from pipeline.errors import TransientError
from pipeline.logging import get_logger

log = get_logger(__name__)

RAW = "feedback.raw"
ENRICHED = "feedback.enriched"
ALERTS = "feedback.alerts"
DLQ = "feedback.dlq"
SIGNALS = "feedback.signals"  # closed event-time signal windows (processors/signals)
ALL = (RAW, ENRICHED, ALERTS, DLQ, SIGNALS)


@dataclass(frozen=True)
class Topics:
    """The topic names in force (a prefix lets several pipelines share one cluster)."""

    raw: str
    enriched: str
    alerts: str
    dlq: str
    signals: str = SIGNALS

    @classmethod
    def from_settings(cls, settings: CommonSettings) -> Topics:
        p = settings.topic_prefix
        return cls(raw=p + RAW, enriched=p + ENRICHED, alerts=p + ALERTS, dlq=p + DLQ, signals=p + SIGNALS)

    def all(self) -> tuple[str, ...]:
        return (self.raw, self.enriched, self.alerts, self.dlq, self.signals)


def ensure_topics(settings: CommonSettings, timeout: float = 30.0) -> Topics:
    """Create the pipeline's topics if missing; safe to call from every process at every start."""
    from pipeline.broker import port_open

    topics = Topics.from_settings(settings)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    servers = [h.strip().rpartition(":") for h in settings.bootstrap.split(",") if h.strip()]
    while time.monotonic() < deadline:
        # kafka-python's admin bootstrap can wait far past its timeout when nothing listens: ask the
        # network first, so a broker that is down is a quick TransientError, never a hung thread.
        if not any(port_open(host, int(port)) for host, _, port in servers if port.isdigit()):
            last = ConnectionRefusedError(f"no bootstrap server of {settings.bootstrap} accepts connections")
            time.sleep(0.5)
            continue
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=settings.bootstrap,
                client_id="feedback-admin",
                request_timeout_ms=10_000,
                bootstrap_timeout_ms=int(max(1.0, deadline - time.monotonic()) * 1000),
                **settings.kafka_client_options(),
            )
        except KafkaError as exc:  # broker not reachable yet
            last = exc
            time.sleep(0.5)
            continue
        try:
            existing = set(admin.list_topics())
            missing = [t for t in topics.all() if t not in existing]
            if missing:
                # raw, enriched and DLQ topics hold customers' words unredacted or keyed: their retention is
                # the erasure horizon (FEEDBACK_TOPIC_RETENTION_HOURS, docs/security.md)
                retention = {"retention.ms": str(int(settings.topic_retention_hours * 3_600_000))}
                new = [
                    NewTopic(t, num_partitions=settings.topic_partitions,
                             replication_factor=settings.topic_replication,
                             topic_configs=retention if t in (topics.raw, topics.enriched, topics.dlq) else {})
                    for t in missing
                ]
                with contextlib.suppress(TopicAlreadyExistsError):  # another process won the race
                    admin.create_topics(new)
                log.info("topics created", topics=missing, partitions=settings.topic_partitions)
            return topics
        except KafkaError as exc:
            last = exc
            time.sleep(0.5)
        finally:
            admin.close()
    raise TransientError(f"could not provision topics on {settings.bootstrap}: {last}", retry_after=5)


#: How long a sink waits before polling again after the broker could not be reached (seconds).
POLL_RETRY_SECONDS = 0.5


def poll_through_outage(consumer: KafkaConsumer, timeout_ms: int, max_records: int) -> dict[Any, list[Any]]:
    """``consumer.poll``, with a broker that cannot be reached answered as "nothing yet".

    kafka-python's ``poll`` raises a retriable error (connection refused, node not ready) when the
    broker is down while it looks for the group coordinator; a sink that let it through exited and
    its records waited for a restart. Retriable errors are logged and answered with an empty poll
    after a short pause, so the sink resumes when the broker is back; any other error is raised.
    """
    try:
        return consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
    except KafkaError as exc:
        if not exc.retriable:
            raise
        log.warning("broker unreachable while polling; retrying", error=f"{type(exc).__name__}: {exc}")
        time.sleep(POLL_RETRY_SECONDS)
        return {}


def commit_processed(consumer: KafkaConsumer, batch: list[Any]) -> str | None:
    """Commit the offsets just after the last record of each partition in ``batch``.

    Returns None, or the reason the commit failed (after a rebalance the records are redelivered;
    every sink's writes are idempotent, so that is harmless).
    """
    offsets: dict[TopicPartition, OffsetAndMetadata] = {}
    for msg in batch:
        tp = TopicPartition(msg.topic, msg.partition)
        if tp not in offsets or offsets[tp].offset < msg.offset + 1:
            offsets[tp] = OffsetAndMetadata(msg.offset + 1, "", -1)
    try:
        consumer.commit(offsets)
    except (CommitFailedError, KafkaError) as exc:
        return str(exc)
    return None
