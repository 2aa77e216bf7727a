"""The one publisher every connector hands its records to (kafka-python, ``acks=all``).

Guarantees: a publish call returns only when the broker has acknowledged every record (or raises
:class:`~pipeline.errors.TransientError` after the producer's own retries), so a caller may
advance its checkpoint or answer ``202`` afterwards. Records are keyed by ``feedback_id``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError
from pydantic import BaseModel

from pipeline import metrics
from pipeline.config import CommonSettings
from pipeline.errors import TransientError
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
        self._lock = threading.Lock()
        # Set when the broker failed us: it may have restarted empty (the embedded broker does), and the
        # embedded broker accepts records for a topic it no longer knows, which the next CreateTopics
        # then replaces. So the topics are provisioned again before the next send (see _provision_if_suspect).
        self._suspect = False
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
            self._suspect = True
            metrics.PUBLISH_ERRORS.labels(topic).inc()
            raise TransientError(f"broker refused the record: {exc}", retry_after=1) from exc

    def send_records(self, records: Iterable[FeedbackRecord], topic: str | None = None) -> list[Any]:
        """Queue records; returns kafka-python futures (use :meth:`publish` to wait for acks)."""
        target = topic or self.topics.raw
        return [self._send(target, r.key, encode(r)) for r in records]

    def publish(self, records: Sequence[FeedbackRecord], timeout: float = 30.0) -> None:
        """Send and wait until the broker acknowledged every record."""
        self._provision_if_suspect()
        self._wait(self.send_records(records), self.topics.raw, timeout)

    def publish_bytes(self, topic: str, items: Sequence[tuple[bytes | None, bytes]], timeout: float = 30.0) -> None:
        self._provision_if_suspect()
        self._wait([self._send(topic, k, v) for k, v in items], topic, timeout)

    def dead_letter(self, letters: Sequence[DeadLetter], timeout: float = 30.0) -> None:
        """Publish dead letters (keyed by feedback id when known) and count them."""
        self._provision_if_suspect()
        futures = [
self._send(self.topics.dlq, d.key_bytes(), encode(d)) for d in letters
        ]
        self._wait(futures, self.topics.dlq, timeout)
        for d in letters:
            metrics.DEAD_LETTERED.labels(d.stage, d.reason).inc()

    def _provision_if_suspect(self) -> None:
        """After a failure, create the topics again (if missing) before sending anything."""
        if self._suspect:
            ensure_topics(self.settings, timeout=10.0)  # TransientError while the broker is still away
            self._suspect = False

    def _wait(self, futures: list[Any], topic: str, timeout: float) -> None:
        try:
            self._producer.flush(timeout=timeout)
            for fut in futures:
                fut.get(timeout=timeout)
        except KafkaError as exc:
            self._suspect = True
            metrics.PUBLISH_ERRORS.labels(topic).inc()
            raise TransientError(f"broker did not acknowledge: {exc}", retry_after=1) from exc
        metrics.PUBLISHED.labels(topic).inc(len(futures))

    async def publish_async(self, records: Sequence[FeedbackRecord], timeout: float = 10.0) -> None:
        """Async variant for the HTTP service: awaits the broker's acks without blocking the loop."""
        loop = asyncio.get_running_loop()
        topic = self.topics.raw
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
            return reachable and bool(self._producer.partitions_for(self.topics.raw))
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
