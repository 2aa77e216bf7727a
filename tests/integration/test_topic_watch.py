"""TopicWatch and RecreatedTopicGuard against the real embedded broker restarted empty."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from pipeline import broker
from pipeline.config import CommonSettings
from pipeline.topics import RecreatedTopicGuard, TopicWatch
from tests.integration.harness import wait_for
from tests.integration.test_async_publisher import records

pytestmark = [pytest.mark.integration, pytest.mark.tansu_only]


@pytest.fixture
def own_broker() -> Iterator[dict[str, Any]]:
    port = broker.free_port()
    state: dict[str, Any] = {"port": port, "proc": broker.start(port)}
    try:
        yield state
    finally:
        state["proc"].kill()
        state["proc"].wait()


def restart_empty(state: dict[str, Any]) -> None:
    state["proc"].kill()
    state["proc"].wait()
    state["proc"] = broker.start(state["port"])


def settings_for(port: int) -> CommonSettings:
    return CommonSettings(kafka_bootstrap=f"127.0.0.1:{port}", topic_watch_seconds=0.1)


def test_watch_reprovisions_missing_topics_and_reports_recreated_ones(own_broker: dict[str, Any]) -> None:
    name = f"watch-{uuid.uuid4().hex[:8]}"
    other = f"watched-only-{uuid.uuid4().hex[:8]}"
    watch = TopicWatch(settings_for(own_broker["port"]), [other], provision={name: 3})
    try:
        assert watch.check() == set()  # missing: created with its 3 partitions, nothing to rewind
        assert watch.check() == set()  # the id it now knows
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{own_broker['port']}")
        assert len(producer.partitions_for(name)) == 3
        producer.close()
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{own_broker['port']}")
        assert other not in admin.list_topics()  # watched, not provisioned: others write it
        admin.close()

        own_broker["proc"].kill()
        own_broker["proc"].wait()
        assert watch.check() == set()  # the broker is away: no answer, no exception
        own_broker["proc"] = broker.start(own_broker["port"])
        assert watch.check() == set()  # back empty: re-provisioned (the old id is remembered meanwhile)
        assert watch.check() == {name}  # ... and it is a different topic now
        assert watch.check() == set()
    finally:
        watch.close()


def test_guard_rewinds_a_consumer_whose_position_would_skip_records_of_the_recreated_topic(
        own_broker: dict[str, Any]) -> None:
    """The consumer read 10 records; the broker restarts empty and 15 new records arrive before the
    consumer fetches again: from its old position it would start at offset 10 of the new topic."""
    bootstrap = f"127.0.0.1:{own_broker['port']}"
    name = f"guard-{uuid.uuid4().hex[:8]}"
    settings = settings_for(own_broker["port"])
    TopicWatch(settings, [], provision={name: 1}).check()  # provisions the topic
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(10):
        producer.send(name, f"old-{i}".encode(), partition=0).get(10)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False)
    tp = TopicPartition(name, 0)
    consumer.assign([tp])
    guard = RecreatedTopicGuard(settings, consumer, [name])
    seen: list[str] = []
    deadline = time.monotonic() + 30
    while len(seen) < 10 and time.monotonic() < deadline:
        seen += [m.value.decode() for recs in consumer.poll(200).values() for m in recs]
        assert not guard.rewound()
    assert seen == [f"old-{i}" for i in range(10)] and consumer.position(tp) == 10

    restart_empty(own_broker)
    wait_for(lambda: broker.port_open("127.0.0.1", own_broker["port"]), 10, what="broker back")
    TopicWatch(settings, [], provision={name: 1}).check()  # another component re-provisions it
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(15):
        producer.send(name, f"new-{i}".encode(), partition=0).get(10)
    producer.close()

    new: list[str] = []
    rewinds = 0
    deadline = time.monotonic() + 60
    while len(set(new)) < 15 and time.monotonic() < deadline:
        new += [m.value.decode() for recs in consumer.poll(200).values() for m in recs]
        rewinds += guard.rewound()
    consumer.close()
    guard.close()
    assert rewinds == 1
    assert sorted(set(new), key=lambda v: int(v.split("-")[1])) == [f"new-{i}" for i in range(15)], new


def read_all(bootstrap: str, topic: str, expect: int, timeout: float = 30) -> list[str]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             enable_auto_commit=False, allow_auto_create_topics=False)
    parts = consumer.partitions_for_topic(topic) or set()
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < expect and time.monotonic() < deadline:
        got += [m.key.decode() for recs in consumer.poll(200).values() for m in recs]
    consumer.close()
    return got


def test_publisher_keeps_records_sent_with_metadata_from_before_a_restart(own_broker: dict[str, Any]) -> None:
    """The embedded broker acknowledges records for a topic it no longer lists (the producer's cached
    metadata says it exists), and registering the topic later drops them. The publisher reads the
    topic's id before and after each batch, so such a batch is never reported as published."""
    from pipeline import metrics
    from pipeline.publisher import Publisher
    from pipeline.topics import ensure_topics

    bootstrap = f"127.0.0.1:{own_broker['port']}"
    settings = CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=f"p{uuid.uuid4().hex[:6]}.")
    ensure_topics(settings)
    publisher = Publisher(settings, client_id="restart-test")
    raw = publisher.topics.raw
    repeated = metrics.PUBLISH_REPEATED.labels(raw)
    try:
        publisher.publish(records(10, "before"))
        restart_empty(own_broker)  # idle producer: nothing failed, its metadata still names the old topic
        wait_for(lambda: broker.port_open("127.0.0.1", own_broker["port"]), 10, what="broker back")
        publisher.publish(records(10, "after"))
        ensure_topics(settings)  # the other components provision on their own
        keys = read_all(bootstrap, raw, 10)
        assert sorted(keys) == sorted(r.key.decode() for r in records(10, "after")), keys

        # The broker acknowledges a batch and restarts before the publisher confirmed the topic: the
        # records went down with it, so the batch is sent again instead of being reported published.
        before = repeated._value.get()
        batch = records(10, "during")
        sends = []

        def send_then_restart() -> list[Any]:
            futures = publisher.send_records(batch)
            sends.append(len(futures))
            if len(sends) == 1:
                for fut in futures:
                    fut.get(10)
                restart_empty(own_broker)
                wait_for(lambda: broker.port_open("127.0.0.1", own_broker["port"]), 10, what="broker back")
            return futures

        publisher._publish_confirmed(raw, send_then_restart, 30.0)
        assert sends == [10, 10] and repeated._value.get() == before + 1
        ensure_topics(settings)
        keys = read_all(bootstrap, raw, 10)
        assert sorted(keys) == sorted(r.key.decode() for r in batch), keys
    finally:
        publisher.close()


def test_publisher_recovers_when_the_topic_comes_back_with_fewer_partitions(own_broker: dict[str, Any]) -> None:
    """After a restart another client's metadata request makes the broker auto-create the topic with
    its default partition count, fewer than before, while the publisher still routes by the old
    count: the broker refuses the partitions it lacks, the producer refreshes, nothing is lost."""
    from pipeline.publisher import Publisher
    from pipeline.topics import ensure_topics

    bootstrap = f"127.0.0.1:{own_broker['port']}"
    settings = CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=f"m{uuid.uuid4().hex[:6]}.",
                              topic_partitions=12)
    ensure_topics(settings)
    publisher = Publisher(settings, client_id="metadata-test")
    raw = publisher.topics.raw
    try:
        publisher.publish(records(10, "before"))
        assert len(publisher._producer.partitions_for(raw)) == 12
        restart_empty(own_broker)
        wait_for(lambda: broker.port_open("127.0.0.1", own_broker["port"]), 10, what="broker back")
        other = KafkaProducer(bootstrap_servers=bootstrap)  # kafka-python's default: auto-create on metadata
        default_count = len(other.partitions_for(raw))
        other.close()
        assert default_count < 12, default_count

        batch = records(40, "after")
        publisher.publish(batch)
        assert len(publisher._producer.partitions_for(raw)) == default_count
        keys = read_all(bootstrap, raw, 40)
        assert sorted(keys) == sorted(r.key.decode() for r in batch), keys
    finally:
        publisher.close()
