"""The one publisher every connector hands its records to (kafka-python, ``acks=all``).

Guarantees: a publish call returns only when the broker has acknowledged every record (or raises
:class:`~pipeline.errors.TransientError` after the producer's own retries), and, under ``feedback
up``, only when the broker did not restart between the send and the acks (the broker gate,
:mod:`pipeline.gate`), so a caller may advance its checkpoint or answer ``202`` afterwards. Records
are keyed by ``feedback_id``. The first publish provisions the topics if they are missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel

from pipeline import metrics
from pipeline.config import CommonSettings
from pipeline.errors import TransientError
from pipeline.gate import BrokerGate, GateState
from pipeline.logging import get_logger
from pipeline.schema import DeadLetter, FeedbackRecord
from pipeline.topics import Topics, ensure_topics

log = get_logger(__name__)


def encode(model: BaseModel) -> bytes:
    return model.model_dump_json(exclude_none=False).encode()


class Publisher:
    """Publishes feedback records and dead letters; thread-safe; usable from sync and async code."""

    def __init__(self, settings: CommonSettings, client_id: str = "feedback-publisher", **producer: Any) -> None:
        self.settings = settings
        self.topics = Topics.from_settings(settings)
        self.gate = BrokerGate(settings.broker_gate)
        self._provisioned = False
        options: dict[str, Any] = {
            "bootstrap_servers": settings.bootstrap,
            "client_id": client_id,
            "acks": "all",
            "linger_ms": 5,
            "retries": 5,
            "retry_backoff_ms": 200,
            "request_timeout_ms": 10_000,
            "max_block_ms": 10_000,
            "max_in_flight_requests_per_connection": 5,
            "enable_idempotence": False,
            # Topics are created explicitly, with the configured partitions (_provision); a metadata
            # request must not auto-create one with the broker's default count.
            "allow_auto_create_topics": False,
            **settings.kafka_client_options(),
            **producer,
        }
        try:
            self._producer = KafkaProducer(**options)
        except KafkaError as exc:
            raise TransientError(f"cannot reach the broker at {settings.bootstrap}: {exc}", retry_after=2) from exc

    # -- sending -------------------------------------------------------------------------------
    def _send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        try:
            return self._producer.send(topic, key=key, value=value)
        except KafkaError as exc:
            metrics.PUBLISH_ERRORS.labels(topic).inc()
            raise TransientError(f"broker refused the record: {exc}", retry_after=1) from exc

    def send_records(self, records: Iterable[FeedbackRecord], topic: str | None = None) -> list[Any]:
        """Queue records; returns kafka-python futures (use :meth:`publish` to wait for acks)."""
        target = topic or self.topics.raw
        return [self._send(target, r.key, encode(r)) for r in records]

    def publish(self, records: Sequence[FeedbackRecord], timeout: float = 30.0) -> None:
        """Send and wait until the broker acknowledged every record."""
        self._publish(self.topics.raw, lambda: self.send_records(records), timeout)

    def publish_bytes(self, topic: str, items: Sequence[tuple[bytes | None, bytes]], timeout: float = 30.0) -> None:
        self._publish(topic, lambda: [self._send(topic, k, v) for k, v in items], timeout)

    def dead_letter(self, letters: Sequence[DeadLetter], timeout: float = 30.0) -> None:
        """Publish dead letters (keyed by feedback id when known) and count them."""
        dlq = self.topics.dlq
        self._publish(dlq, lambda: [self._send(dlq, d.key_bytes(), encode(d)) for d in letters], timeout)
        for d in letters:
            metrics.DEAD_LETTERED.labels(d.stage, d.reason).inc()

    def _publish(self, topic: str, send: Callable[[], list[Any]], timeout: float) -> None:
        """Send, wait for the acks, and accept them only when the broker gate stayed open throughout."""
        before = self.opened(topic)
        if not self._provisioned:
            ensure_topics(self.settings, timeout=10.0)  # TransientError while the broker is away
            self._provisioned = True
        futures = send()
        self._wait(futures, topic, timeout)
        self.confirm(topic, before, len(futures))
        metrics.PUBLISHED.labels(topic).inc(len(futures))

    def opened(self, topic: str) -> GateState:
        """The gate's state before a send; TransientError while it is closed (the broker restarts)."""
        state = self.gate.read()
        if not state.open:
            metrics.PUBLISH_ERRORS.labels(topic).inc()
            raise TransientError("the broker is restarting (feedback up); send again shortly", retry_after=2)
        return state

    def confirm(self, topic: str, before: GateState, count: int) -> None:
        """After the acks: TransientError unless the gate is still in the state ``before`` (same broker start)."""
        after = self.gate.read()
        if after != before:
            metrics.PUBLISH_ERRORS.labels(topic).inc(max(count, 1))
            log.warning("the broker restarted while these records were sent: not confirmed", topic=topic,
                        gate_before=str(before), gate_after=str(after))
            raise TransientError("the broker restarted while these records were sent; send them again",
                                 retry_after=2)

    def _wait(self, futures: list[Any], topic: str, timeout: float) -> None:
        try:
            self._producer.flush(timeout=timeout)
            for fut in futures:
                fut.get(timeout=timeout)
        except KafkaError as exc:
            metrics.PUBLISH_ERRORS.labels(topic).inc()
            raise TransientError(f"broker did not acknowledge: {exc}", retry_after=1) from exc

    async def publish_async(self, records: Sequence[FeedbackRecord], timeout: float = 10.0) -> None:
        """Async variant for the HTTP service: awaits the broker's acks without blocking the loop."""
        loop = asyncio.get_running_loop()
        topic = self.topics.raw
        before = self.opened(topic)
        waiters: list[asyncio.Future[None]] = []
        for record in records:
            waiter: asyncio.Future[None] = loop.create_future()
            fut = self._send(topic, record.key, encode(record))
            fut.add_callback(_resolver(loop, waiter, None))
            fut.add_errback(_resolver(loop, waiter, "error"))
            waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.gather(*waiters), timeout)
        except (TimeoutError, KafkaError) as exc:
            metrics.PUBLISH_ERRORS.labels(topic).inc(len(records))
            raise TransientError(f"broker did not acknowledge in {timeout}s: {exc!r}", retry_after=2) from exc
        self.confirm(topic, before, len(records))
        metrics.PUBLISHED.labels(topic).inc(len(records))

    def ready(self) -> bool:
        """True when a bootstrap server accepts connections and the raw topic's metadata is known.

        May block up to the producer's ``max_block_ms`` when no metadata is cached: call it from
        a worker thread.
        """
        from pipeline.broker import port_open

        try:
            reachable = any(
                port_open(host, int(port))
                for host, _, port in (h.strip().rpartition(":") for h in self.settings.bootstrap.split(","))
            )
            return reachable and self.gate.read().open and bool(self._producer.partitions_for(self.topics.raw))
        except Exception:  # readiness must never raise
            return False

    async def ready_async(self) -> bool:
        """:meth:`ready` from async code, in a worker thread (the HTTP service's readiness probe)."""
        return await asyncio.to_thread(self.ready)

    def close(self, timeout: float = 10.0) -> None:
        """Flush and close; records the broker never acknowledged were already reported to callers."""
        try:
            self._producer.close(timeout=timeout)
        except KafkaError as exc:
            log.warning("producer closed with unsent records", error=str(exc))


def _resolver(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None], kind: str | None) -> Any:
    def settle(result: Any) -> None:
        def apply() -> None:
            if waiter.done():
                return
            if kind == "error":
                waiter.set_exception(result if isinstance(result, BaseException) else KafkaError(str(result)))
            else:
                waiter.set_result(None)

        loop.call_soon_threadsafe(apply)

    return settle
