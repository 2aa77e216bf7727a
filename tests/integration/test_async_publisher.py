"""The HTTP service's asyncio publisher (aiokafka) against the real embedded broker: the broker's ack
before ``202``, the record key and partition, ``503`` while the broker cannot take records."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2

from connectors.http.app import create_app
from pipeline import broker, metrics
from pipeline.async_publisher import AsyncPublisher
from pipeline.config import HttpSettings
from pipeline.errors import TransientError
from pipeline.schema import FeedbackRecord
from pipeline.topics import Topics, ensure_topics
from tests.bench.tickets_stage import SECRET, webhook_request
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import wait_for

pytestmark = pytest.mark.integration

PARTITIONS = 3


def settings_for(bootstrap: str, tmp_path: Path, **extra: Any) -> HttpSettings:
    return HttpSettings(kafka_bootstrap=bootstrap, data_dir=tmp_path, topic_prefix=f"apub{uuid.uuid4().hex[:6]}.",
                        topic_partitions=PARTITIONS, customer_hash_key=TEST_CUSTOMER_KEY,
                        zendesk_webhook_secret=SECRET.decode(), **extra)


def raw_messages(settings: HttpSettings) -> dict[bytes, tuple[int, dict[str, Any]]]:
    """Everything in the raw topic right now: key -> (partition, value)."""
    topic = Topics.from_settings(settings).raw
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap, group_id=None, enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: dict[bytes, tuple[int, dict[str, Any]]] = {}
        deadline = time.monotonic() + 20
        while any(consumer.position(tp) < ends[tp] for tp in tps) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for msg in batch:
                    out[msg.key] = (msg.partition, json.loads(msg.value))
        return out
    finally:
        consumer.close()


def expected_partition(key: bytes) -> int:
    """kafka-python's DefaultPartitioner (the sync Publisher's): murmur2 of the key."""
    return (murmur2(key) & 0x7FFFFFFF) % PARTITIONS


def records(n: int, run: str) -> list[FeedbackRecord]:
    return [FeedbackRecord(source="event", source_ref=f"{run}-{i}", text=f"async publisher {i}") for i in range(n)]


def test_publish_returns_after_the_ack_with_feedback_id_keys(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = settings_for(kafka_bootstrap, tmp_path)
    ensure_topics(settings)
    run = uuid.uuid4().hex[:8]
    batch, single = records(20, run), records(1, run + "s")
    published = metrics.PUBLISHED.labels(Topics.from_settings(settings).raw)

    async def go() -> None:
        pub = AsyncPublisher(settings)
        await pub.start()
        try:
            await pub.publish_async(batch)
            await pub.publish_async(single)
            assert await pub.ready_async()
        finally:
            await pub.close()

    before = published._value.get()
    asyncio.run(go())
    # read right after the calls returned: acks=all means every record is already in the log
    found = raw_messages(settings)
    assert published._value.get() == before + 21
    for record in [*batch, *single]:
        assert record.key == str(record.feedback_id).encode()
        partition, value = found[record.key]
        assert value["source_ref"] == record.source_ref and value["feedback_id"] == str(record.feedback_id)
        assert partition == expected_partition(record.key), "same partition as the kafka-python publisher"


@pytest.fixture
def own_broker() -> Iterator[tuple[int, list[Any]]]:
    """A broker of this test alone (killed, paused, restarted): (port, [process])."""
    port = broker.free_port()
    procs = [broker.start(port)]
    try:
        yield port, procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.kill()
                proc.wait()


def event(ref: str) -> dict[str, str]:
    return {"source_ref": ref, "text": "the courier was late"}


def test_service_answers_202_only_after_the_brokers_ack(own_broker: tuple[int, list[Any]], tmp_path: Path) -> None:
    """With the broker paused (it accepts connections but answers nothing) a delivery gets 503 after the
    publish timeout, never 202; once it runs again the same delivery is accepted and is in the topic."""
    port, procs = own_broker
    settings = settings_for(f"127.0.0.1:{port}", tmp_path, publish_timeout_seconds=2)
    run = uuid.uuid4().hex[:8]
    with TestClient(create_app(settings)) as client:  # the app's own AsyncPublisher
        assert isinstance(client.app.state.publisher, AsyncPublisher)  # type: ignore[attr-defined]
        ok = client.post("/v1/events", json=event(f"{run}-ok"))
        assert ok.status_code == 202
        os.kill(procs[0].pid, signal.SIGSTOP)
        try:
            paused = client.post("/v1/events", json=event(f"{run}-paused"))
            assert paused.status_code == 503, paused.text
            assert paused.json()["error"] == "broker_unavailable" and int(paused.headers["retry-after"]) >= 1
        finally:
            os.kill(procs[0].pid, signal.SIGCONT)
        codes = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = client.post("/v1/events", json=event(f"{run}-paused"))
            codes.append(r.status_code)
            if r.status_code == 202:
                break
            time.sleep(1)
        assert codes[-1] == 202, codes
        ids = [ok.json()["feedback_ids"][0], r.json()["feedback_ids"][0]]
    found = raw_messages(settings)
    for fid in ids:
        assert fid.encode() in found and found[fid.encode()][0] == expected_partition(fid.encode())


def test_webhook_and_events_publish_keyed_records(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = settings_for(kafka_bootstrap, tmp_path)
    run = str(uuid.uuid4().int)[:6]
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json() == {"status": "ready"}
        path, body, headers = webhook_request(run, 1)
        hook = client.post(path, content=body, headers=headers)
        assert hook.status_code == 202, hook.text
        events = client.post("/v1/events", json=[event(f"{run}-a"), event(f"{run}-b")])
        assert events.status_code == 202 and events.json()["accepted"] == 2
        form = client.post("/forms/default", data={"comment": "async form"})
        assert form.status_code == 202
    found = raw_messages(settings)
    ids = hook.json()["feedback_ids"] + events.json()["feedback_ids"] + form.json()["feedback_ids"]
    assert len(ids) == 4
    for fid in ids:
        partition, value = found[fid.encode()]
        assert value["feedback_id"] == fid and partition == expected_partition(fid.encode())
    assert found[hook.json()["feedback_ids"][0].encode()][1]["source_ref"].startswith(f"zendesk:ticket:{run}")


def test_503_while_the_broker_is_down_and_202_with_topics_back_after_restart(
        own_broker: tuple[int, list[Any]], tmp_path: Path) -> None:
    port, procs = own_broker
    settings = settings_for(f"127.0.0.1:{port}", tmp_path, publish_timeout_seconds=2)
    run = str(uuid.uuid4().int)[:6]
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/events", json=event(f"{run}-before")).status_code == 202
        procs[0].kill()
        procs[0].wait()
        down = client.post("/v1/events", json=event(f"{run}-down"))
        assert down.status_code == 503 and down.json()["error"] == "broker_unavailable", down.text
        assert int(down.headers["retry-after"]) >= 1
        path, body, headers = webhook_request(run, 2)
        hook = client.post(path, content=body, headers=headers)
        assert hook.status_code == 503 and hook.json()["error"] == "broker_unavailable", hook.text
        assert client.get("/readyz").status_code == 503

        # it comes back empty; what `feedback up` does next (pipeline.supervisor) is provision the topics
        procs.append(broker.start(port))
        wait_for(lambda: broker.port_open("127.0.0.1", port), 30, what="the broker back")
        ensure_topics(settings)

        def accepted(payload: dict[str, str]) -> bool:
            return client.post("/v1/events", json=payload).status_code == 202

        wait_for(lambda: accepted(event(f"{run}-after")), 60, interval=1, what="202 after the restart")
        path, body, headers = webhook_request(run, 3)
        # a 503 (with Retry-After) may still come while the producer reconnects: retry like a client
        wait_for(lambda: client.post(path, content=body, headers=headers).status_code == 202, 30, interval=1,
                 what="webhook 202 after the restart")
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, what="ready again")


def test_a_producer_whose_sender_died_is_replaced(kafka_bootstrap: str, tmp_path: Path) -> None:
    settings = settings_for(kafka_bootstrap, tmp_path)
    ensure_topics(settings)
    run = uuid.uuid4().hex[:8]

    async def go() -> list[str]:
        pub = AsyncPublisher(settings)
        await pub.start()
        outcomes = []
        try:
            pub.producer._sender.sender_task.cancel()  # what an unexpected error in aiokafka's sender does
            for i in range(20):
                try:
                    await pub.publish_async(records(1, f"{run}-{i}"), timeout=1)
                    outcomes.append("ok")
                    break
                except TransientError:
                    outcomes.append("503")
                    await asyncio.sleep(0.5)
        finally:
            await pub.close()
        return outcomes

    outcomes = asyncio.run(go())
    assert outcomes[0] == "503" and outcomes[-1] == "ok", outcomes
