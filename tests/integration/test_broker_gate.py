"""The broker gate (pipeline/gate.py) with the connectors' publisher against a real embedded broker that
restarts empty, driven step by step as `feedback up`'s supervisor drives it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from pipeline import broker
from pipeline.config import CommonSettings
from pipeline.errors import TransientError
from pipeline.gate import BrokerGate, GateState
from pipeline.publisher import Publisher
from pipeline.schema import FeedbackRecord
from pipeline.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.tansu_only]


def records(n: int, run: str) -> list[FeedbackRecord]:
    return [FeedbackRecord(source="event", source_ref=f"{run}-{i}", text=f"gate {i}") for i in range(n)]


def keys_in(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, allow_auto_create_topics=False)
    tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += [m.key.decode() for recs in consumer.poll(200).values() for m in recs]
    consumer.close()
    return got


class Supervised:
    """The embedded broker and the gate, handled as pipeline.supervisor handles them."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = broker.free_port()
        self.settings = CommonSettings(kafka_bootstrap=f"127.0.0.1:{self.port}", broker_gate=tmp_path / "broker.gate",
                                       topic_prefix=f"g{uuid.uuid4().hex[:6]}.")
        self.gate = BrokerGate(self.settings.broker_gate)
        self.starts = 0
        self.proc = broker.start(self.port)
        self._opened()

    def _opened(self) -> None:
        ensure_topics(self.settings)
        self.starts += 1
        self.gate.write(GateState(open=True, epoch=self.starts))

    def restart(self) -> None:
        """The broker dies: close the gate, start it again (empty), provision, open the gate."""
        self.proc.kill()
        self.proc.wait()
        self.gate.write(GateState(open=False, epoch=self.starts))
        self.proc = broker.start(self.port)
        self._opened()


@pytest.fixture
def supervised(tmp_path: Path) -> Iterator[Supervised]:
    s = Supervised(tmp_path)
    try:
        yield s
    finally:
        s.proc.kill()
        s.proc.wait()


def test_an_ack_that_spans_a_restart_is_refused_and_a_resend_is_kept(supervised: Supervised) -> None:
    publisher = Publisher(supervised.settings, client_id="gate-test")
    raw, bootstrap = publisher.topics.raw, supervised.settings.bootstrap
    try:
        first = records(10, "first")
        publisher.publish(first)
        assert sorted(keys_in(bootstrap, raw, 10)) == sorted(r.key.decode() for r in first)

        # acknowledged by the broker, which then restarts (empty) before the publisher confirmed them
        during = records(10, "during")

        def send_then_restart() -> list[Any]:
            futures = publisher.send_records(during)
            for fut in futures:
                fut.get(10)
            supervised.restart()
            return futures

        with pytest.raises(TransientError, match="restarted while these records were sent"):
            publisher._publish(raw, send_then_restart, 30.0)
        assert keys_in(bootstrap, raw, 1, timeout=3) == []  # they went down with the broker: not confirmed

        # the caller sends them again (a connector keeps its cursor; HTTP answered 503): now they stay
        publisher.publish(during)
        assert sorted(keys_in(bootstrap, raw, 10)) == sorted(r.key.decode() for r in during)
    finally:
        publisher.close()


def test_nothing_is_sent_while_the_gate_is_closed_and_an_idle_publisher_is_kept_after(
        supervised: Supervised) -> None:
    publisher = Publisher(supervised.settings, client_id="gate-test")
    raw, bootstrap = publisher.topics.raw, supervised.settings.bootstrap
    try:
        publisher.publish(records(5, "warm"))
        supervised.gate.write(GateState(open=False, epoch=supervised.starts))
        started = time.monotonic()
        with pytest.raises(TransientError, match="restarting") as refused:
            publisher.publish(records(5, "closed"))
        assert refused.value.retry_after == 2 and time.monotonic() - started < 1  # refused at once, not sent
        assert not publisher.ready()

        supervised.gate.write(GateState(open=True, epoch=supervised.starts))
        supervised.restart()  # the publisher sat idle through it, its metadata from the old broker
        after = records(10, "after")
        publisher.publish(after)
        assert sorted(keys_in(bootstrap, raw, 10)) == sorted(r.key.decode() for r in after)
    finally:
        publisher.close()
