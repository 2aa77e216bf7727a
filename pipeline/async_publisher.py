"""The asyncio-native publisher of the HTTP service (aiokafka, ``acks=all``).

Same contract as :class:`pipeline.publisher.Publisher`, without its thread hand-off: a publish
call returns only when the broker acknowledged every record, or raises
:class:`~pipeline.errors.TransientError` (broker down, topic missing, no ack within the timeout, or
the broker gate of ``feedback up`` closed or moved on between the send and the acks: see
:mod:`pipeline.gate`), so the caller may answer ``202`` afterwards. A producer started before the
broker's last restart is replaced before it sends again. Records are keyed by ``feedback_id`` and partitioned
with the same murmur2 partitioner as kafka-python, so both publishers put a record on the same
partition. Must be started and used on one event loop (the HTTP service's); the synchronous
connectors, the import and the sinks' dead letters keep using :class:`~pipeline.publisher.Publisher`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.config import CommonSettings
from pipeline.errors import TransientError
from pipeline.gate import BrokerGate
from pipeline.kafka_security import client_options
from pipeline.logging import get_logger
from pipeline.publisher import encode
from pipeline.schema import DeadLetter, FeedbackRecord
from pipeline.topics import Topics

log = get_logger(__name__)


def aiokafka_client_options(settings: CommonSettings) -> dict[str, Any]:
    """The FEEDBACK_KAFKA_* security settings in aiokafka's terms (:mod:`pipeline.kafka_security`)."""
    return client_options(settings, "aiokafka")


class AsyncPublisher:
    """Publishes feedback records and dead letters from async code; one instance per event loop."""

    def __init__(self, settings: CommonSettings, client_id: str = "feedback-http", **producer: Any) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self._options: dict[str, Any] = {
            "bootstrap_servers": settings.bootstrap,
            "client_id": client_id,
            "acks": "all",
            "linger_ms": 0,  # one produce request in flight per broker: records queue behind it anyway
            "retry_backoff_ms": 200,
            "request_timeout_ms": 10_000,
            "max_batch_size": 256 * 1024,
            "enable_idempotence": False,
            **aiokafka_client_options(settings),
            **producer,
        }
        self._producer: AIOKafkaProducer | None = None
        self.gate = BrokerGate(settings.broker_gate)
        self._epoch: int | None = None  # the gate's broker start the producer was started in
        self._replacing: asyncio.Task[None] | None = None
        self._started = self._closed = False

    async def start(self) -> None:
        """Connect to the bootstrap servers; TransientError when none answers."""
        epoch = self.gate.read().epoch  # read first: a restart during the start makes the next send replace it
        producer = AIOKafkaProducer(**self._options)
        try:
            await producer.start()
        except (KafkaError, OSError) as exc:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise TransientError(f"cannot reach the broker at {self.settings.bootstrap}: {exc!r}",
                                 retry_after=2) from exc
        self._producer, self._epoch, self._started = producer, epoch, True

    @property
    def producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            if not self._started or self._closed:
                raise RuntimeError("AsyncPublisher is not started (or already closed)")
            self._replace(None)  # the last replacement could not connect: try again
            raise TransientError("the kafka producer is restarting", retry_after=1)
        return self._producer

    # -- sending -------------------------------------------------------------------------------
    async def _send_all(self, topic: str, items: Sequence[tuple[bytes | None, bytes]], timeout: float) -> None:
        """Queue every item, then wait for all the broker's acks; TransientError on any failure.

        The acks count only when the broker gate was open before the send and is in the same state
        after the acks (:mod:`pipeline.gate`): else the broker restarted in between and may have
        acknowledged records for topics it had forgotten, so the caller gets TransientError (503) and
        sends again.
        """
        before = self.gate.read()
        if not before.open:
            metrics.PUBLISH_ERRORS.labels(topic).inc(len(items))
            raise TransientError("the broker is restarting (feedback up); send again shortly", retry_after=2)
        if self._producer is not None and self._epoch != before.epoch:
            # started before the broker's restart: its connections and metadata are the old broker's
            self._replace(self._producer)
        producer = self.producer
        try:
            async with asyncio.timeout(timeout):
                if len(items) == 1:  # the common case (one delivery, one record): no gather
                    key, value = items[0]
                    await (await producer.send(topic, value, key))
                else:
                    acks = [await producer.send(topic, value, key) for key, value in items]
                    await asyncio.gather(*acks)
        except (TimeoutError, KafkaError, OSError) as exc:
            metrics.PUBLISH_ERRORS.labels(topic).inc(len(items))
            if _sender_died(producer):
                self._replace(producer)
            raise TransientError(f"broker did not acknowledge in {timeout}s: {exc!r}", retry_after=2) from exc
        after = self.gate.read()
        if after != before:
            metrics.PUBLISH_ERRORS.labels(topic).inc(len(items))
            log.warning("the broker restarted while these records were sent: not confirmed", topic=topic,
                        gate_before=str(before), gate_after=str(after))
            raise TransientError("the broker restarted while these records were sent; send them again",
                                 retry_after=2)
        metrics.PUBLISHED.labels(topic).inc(len(items))

    def _replace(self, dead: AIOKafkaProducer | None) -> None:
        """aiokafka's sender task ended on an unexpected error (that producer never sends again), or the
        producer predates the broker's restart: start a fresh one in the background (callers get
        TransientError until it is up)."""
        if self._closed or (self._replacing is not None and not self._replacing.done()):
            return
        log.warning("starting a new kafka producer", reason="no producer" if dead is None else
                    "sender stopped" if _sender_died(dead) else "the broker restarted")
        if dead is not None and self._producer is dead:
            self._producer = None

        async def swap() -> None:
            if dead is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(5):
                        await dead.stop()
            try:
                await self.start()
            except TransientError as exc:
                log.warning("new kafka producer could not start", error=str(exc))

        self._replacing = asyncio.get_running_loop().create_task(swap())

    async def publish_async(self, records: Sequence[FeedbackRecord], timeout: float = 10.0) -> None:
        """Send ``records`` to the raw topic and wait until the broker acknowledged every one."""
        if records:
            await self._send_all(self.topics.raw, [(r.key, encode(r)) for r in records], timeout)

    async def publish_bytes_async(self, topic: str, items: Sequence[tuple[bytes | None, bytes]],
                                  timeout: float = 10.0) -> None:
        if items:
            await self._send_all(topic, items, timeout)

    async def dead_letter_async(self, letters: Sequence[DeadLetter], timeout: float = 10.0) -> None:
        """Publish dead letters (keyed by feedback id when known) and count them."""
        if not letters:
            return
        await self._send_all(self.topics.dlq, [(d.key_bytes(), encode(d)) for d in letters], timeout)
        for d in letters:
            metrics.DEAD_LETTERED.labels(d.stage, d.reason).inc()

    # -- health --------------------------------------------------------------------------------
    async def ready_async(self, timeout: float = 5.0) -> bool:
        """True when a bootstrap server accepts connections and the raw topic's partitions are known."""
        if self._producer is None or _sender_died(self._producer) or not self.gate.read().open:
            return False
        try:
            async with asyncio.timeout(timeout):
                if not await _any_port_open(self.settings.bootstrap):
                    return False
                return bool(await self._producer.partitions_for(self.topics.raw))
        except Exception:  # readiness must never raise
            return False

    async def close(self, timeout: float = 10.0) -> None:
        """Flush and stop; records the broker never acknowledged were already reported to callers."""
        self._closed = True
        if self._replacing is not None and not self._replacing.done():
            self._replacing.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replacing
        producer, self._producer = self._producer, None
        if producer is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await producer.stop()
        except (TimeoutError, KafkaError) as exc:
            log.warning("producer closed with unsent records", error=repr(exc))


def _sender_died(producer: AIOKafkaProducer) -> bool:
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)  # aiokafka internals, guarded
    return isinstance(task, asyncio.Future) and task.done()


async def _any_port_open(bootstrap: str, timeout: float = 0.5) -> bool:
    for host, _, port in (h.strip().rpartition(":") for h in bootstrap.split(",") if h.strip()):
        if not port.isdigit():
            continue
        try:
            async with asyncio.timeout(timeout):
                _reader, writer = await asyncio.open_connection(host, int(port))
        except (OSError, TimeoutError):
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    return False
