"""Topic names and idempotent provisioning."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
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
                new = [
                    NewTopic(t, num_partitions=settings.topic_partitions,
                             replication_factor=settings.topic_replication)
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


class TopicWatch:
    """Notices topics that were deleted and created again (a new topic id), and re-provisions missing ones.

    The embedded broker forgets everything when it restarts: the topics come back (re-provisioned by
    whichever component gets there first) with new ids, their offsets starting at 0 again, and the
    consumer groups' committed offsets are gone. A consumer that keeps its position from before the
    restart (kafka-python's and aiokafka's fetch position, faust's read offset) would silently skip
    every record below that position in the new topic. Its owner calls :meth:`check` every
    ``FEEDBACK_TOPIC_WATCH_SECONDS`` and rewinds the partitions of a recreated topic to the beginning:
    records may be read twice (every write downstream is idempotent), none is skipped.

    Only the topics in ``provision`` (name -> partitions) are created when missing, and only topics
    that this process alone writes belong there: the embedded broker accepts records for a topic it
    does not know yet (from a producer that kept its metadata across the restart), and an explicit
    CreateTopics then replaces that topic, records and all (measured: 13 of 20 e-mails lost). Topics
    other processes write are created by their producers, which check them around every batch
    (:class:`pipeline.publisher.Publisher`), or by the broker's auto-creation.

    ``check`` blocks (kafka-python); async callers run it in a thread.
    """

    def __init__(self, settings: CommonSettings, topics: Iterable[str],
                 provision: dict[str, int] | None = None) -> None:
        self.settings = settings
        self.names = tuple(dict.fromkeys([*topics, *(provision or {})]))
        self.provision = dict(provision or {})  # topic -> partitions to create it with if missing
        self._ids: dict[str, str] = {}  # the last id seen per topic (kept while the topic is missing)
        self._admin: KafkaAdminClient | None = None

    def renewed(self) -> TopicWatch:
        """A new watch in place of one whose check hung: same topics, the ids seen so far, its own
        connection (this one is abandoned; kafka-python's clients are not shared between threads)."""
        fresh = TopicWatch(self.settings, self.names, self.provision)
        fresh._ids = dict(self._ids)
        return fresh

    def add(self, topic: str) -> None:
        """Watch ``topic`` too (not provisioned)."""
        if topic not in self.names:
            self.names = (*self.names, topic)

    def ids(self) -> dict[str, str | None]:
        """Each watched topic's current id, None for a topic the broker does not list.

        Raises ``KafkaError`` or ``OSError`` while the broker is unreachable.
        """
        try:
            described = self._describe()
        except (KafkaError, OSError):
            self.close()
            raise
        found: dict[str, str | None] = dict.fromkeys(self.names)
        for topic in described:
            name, topic_id = topic.get("name"), topic.get("topic_id")
            if name in found and not topic.get("error_code") and topic_id:
                found[name] = str(topic_id)
        return found

    def check(self) -> set[str]:
        """The watched topics whose id changed since the last check that saw them (empty while the broker is away)."""
        try:
            current = self.ids()
        except (KafkaError, OSError) as exc:
            log.debug("topic watch: broker not reachable", error=str(exc))
            return set()
        changed: set[str] = set()
        missing: list[str] = []
        for name, topic_id in current.items():
            if topic_id is None:
                missing.append(name)
                continue
            prior = self._ids.get(name)
            if prior is not None and prior != topic_id:
                changed.add(name)
            self._ids[name] = topic_id
        if [n for n in missing if n in self.provision]:
            self._create([n for n in missing if n in self.provision])
        if changed:
            log.warning("topics were recreated (the broker lost its data): re-reading them from the beginning",
                        topics=sorted(changed))
        return changed

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None

    def _describe(self) -> list[dict[str, Any]]:
        from pipeline.broker import port_open

        if self._admin is None:
            servers = [h.strip().rpartition(":") for h in self.settings.bootstrap.split(",") if h.strip()]
            if not any(port_open(host, int(port)) for host, _, port in servers if port.isdigit()):
                raise ConnectionRefusedError(f"no bootstrap server of {self.settings.bootstrap} accepts connections")
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.settings.bootstrap, client_id="feedback-topic-watch",
                request_timeout_ms=5_000, bootstrap_timeout_ms=5_000, **self.settings.kafka_client_options(),
            )
        return list(self._admin.describe_topics(list(self.names)))

    def _create(self, names: list[str]) -> None:
        assert self._admin is not None
        new = [NewTopic(n, num_partitions=self.provision[n], replication_factor=self.settings.topic_replication)
               for n in names]
        try:
            with contextlib.suppress(TopicAlreadyExistsError):  # another component won the race
                self._admin.create_topics(new)
            log.info("missing topics re-provisioned", topics=names)
        except KafkaError as exc:
            log.warning("could not re-provision topics; retrying at the next check", topics=names, error=str(exc))


def rewind_recreated(consumer: KafkaConsumer, changed: set[str]) -> list[TopicPartition]:
    """Seek a kafka-python consumer's partitions of the ``changed`` topics to their beginning."""
    tps = [tp for tp in consumer.assignment() if tp.topic in changed]
    if tps:
        # Fresh metadata first (a remote call): kafka-python then drops the old topic's cached leader
        # epochs, which the new topic's fetches would otherwise be refused for.
        with contextlib.suppress(KafkaError):
            consumer.topics()
        consumer.seek_to_beginning(*tps)
    return tps


class RecreatedTopicGuard:
    """A :class:`TopicWatch` for one kafka-python consumer, checked at most every ``FEEDBACK_TOPIC_WATCH_SECONDS``."""

    def __init__(self, settings: CommonSettings, consumer: KafkaConsumer, topics: Iterable[str]) -> None:
        self.watch = TopicWatch(settings, topics)
        self.consumer = consumer
        self.interval = settings.topic_watch_seconds
        self._next = time.monotonic() + self.interval
        # the ids before the consumer's first poll, so a restart right after it is noticed
        self.watch.check()

    def rewound(self) -> bool:
        """True when a watched topic was recreated since the last check: the consumer now reads it from
        the beginning, and the batch in hand must not be committed (its offsets are the old topic's)."""
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.interval
        changed = self.watch.check()
        if changed:
            tps = rewind_recreated(self.consumer, changed)
            log.warning("rewound recreated topics to their beginning",
                        partitions=sorted(f"{tp.topic}/{tp.partition}" for tp in tps))
        return bool(changed)

    def close(self) -> None:
        self.watch.close()
