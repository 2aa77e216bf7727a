"""The embedded broker restarts (and forgets everything): every component recovers on its own."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import restartable_pipeline, start_broker, stop_broker
from tests.integration.harness import Pipeline, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.tansu_only]


def post_until_accepted(client: httpx.Client, body: dict[str, object], deadline: float) -> list[int]:
    """What a well-behaved client does: retry on 503 (honouring Retry-After, capped) until 202."""
    codes = []
    while time.monotonic() < deadline:
        r = client.post("/v1/events", json=body)
        codes.append(r.status_code)
        if r.status_code == 202:
            return codes
        assert r.status_code == 503 and r.json()["error"] == "broker_unavailable", r.text
        time.sleep(min(float(r.headers.get("retry-after", "1")), 1.0))
    raise AssertionError(f"never accepted: {codes[-5:]}")


def post_before(p: Pipeline, client: httpx.Client, run: str, n: int) -> None:
    """``n`` records accepted and stored before the restart."""
    for i in range(n):
        assert client.post("/v1/events", json={"source_ref": f"{run}-before-{i}", "text": "ok"}).status_code == 202
    wait_for(lambda: p.count(f"source_ref LIKE '{run}-before-%'") == n, 60, what="rows before")


def test_broker_restart_503_then_202_and_nothing_lost(restartable: tuple[Pipeline, int]) -> None:
    p, port = restartable
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=p.url, timeout=30) as client:
        post_before(p, client, run, 100)

        stop_broker(p)
        down = client.post("/v1/events", json={"source_ref": f"{run}-down", "text": "broker is down"})
        assert down.status_code == 503 and int(down.headers["retry-after"]) >= 1
        assert client.get("/readyz").status_code == 503

        start_broker(p, port)
        deadline = time.monotonic() + 90
        codes: list[int] = []
        for i in range(300):
            codes += post_until_accepted(client, {"source_ref": f"{run}-after-{i}",
                                                  "text": f"Order {i}: the courier was late"}, deadline)
        assert codes.count(202) == 300
        wait_for(lambda: client.get("/readyz").status_code == 200, 30, what="ready again")

    # Every record accepted after the restart reaches the warehouse exactly once: the components
    # notice the recreated topics and re-read them from offset 0 (pipeline.topics.TopicWatch) instead
    # of resuming from their positions in the lost ones.
    where = f"source_ref LIKE '{run}-after-%'"
    wait_for(lambda: p.count(where) == 300, 120, what="all 300 records accepted after the restart in the warehouse")
    time.sleep(2)
    assert p.count(where) == 300  # and none twice
    assert p.count(f"source_ref LIKE '{run}-before-%'") == 100
    assert all(proc.poll() is None for proc in p.procs.values()), "components recover without restarts"
    topics = broker_topics(port)
    assert {f"{p.prefix}feedback.raw", f"{p.prefix}feedback.enriched", f"{p.prefix}feedback.dlq"} <= topics


def broker_topics(port: int) -> set[str]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def test_broker_restart_between_requests_loses_nothing_under_concurrent_clients(
        restartable: tuple[Pipeline, int]) -> None:
    """The broker restarts while the HTTP service is idle (no request fails during the outage), then
    four clients post at once: whatever the service answered 202 reaches the warehouse."""
    from concurrent.futures import ThreadPoolExecutor

    p, port = restartable
    run = uuid.uuid4().hex[:8]
    with httpx.Client(base_url=p.url, timeout=30) as client:
        post_before(p, client, run, 20)
    stop_broker(p)
    start_broker(p, port)  # back at once

    def client_posts(c: int) -> int:
        accepted = 0
        with httpx.Client(base_url=p.url, timeout=30) as client:
            deadline = time.monotonic() + 90
            for i in range(75):
                codes = post_until_accepted(client, {"source_ref": f"{run}-after-{c}-{i}",
                                                     "text": f"Order {i}: the courier was late"}, deadline)
                accepted += codes.count(202)
        return accepted

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(client_posts, range(4))) == 300
    where = f"source_ref LIKE '{run}-after-%'"
    try:
        wait_for(lambda: p.count(where) == 300, 120, what="all 300 records accepted after the restart in the warehouse")
    except AssertionError:
        stored = {r["source_ref"] for r in p.rows(where)}
        missing = sorted({f"{run}-after-{c}-{i}" for c in range(4) for i in range(75)} - stored)
        found = {t: topic_refs(p, t, missing) for t in ("feedback.raw", "feedback.enriched")}
        raise AssertionError(f"{len(missing)} of 300 accepted records missing: {missing[:10]}; "
                             f"present in the topics: {found}") from None
    time.sleep(2)
    assert p.count(where) == 300
    assert all(proc.poll() is None for proc in p.procs.values()), "components recover without restarts"


def test_broker_restart_before_the_first_topic_check_loses_nothing(tmp_path: Path) -> None:
    """The consumers read their topics' ids before they start consuming, so a broker restart long
    before their first periodic check (20 s away here) is noticed at that check. The processor used to
    take the ids of its first check as the originals; when the broker restarted before it, faust went
    on at its old positions in the recreated raw topic (its read offsets drop every record below them)
    and the first records of some partitions were never enriched (the concurrent-clients test above
    lost 12 of 300 that way, under load). Whether faust keeps its positions or the consumer group
    rejoins first depends on timing, so the loss itself shows only when the timing allows it; that the
    first check notices the restart is checked every time."""
    with restartable_pipeline(tmp_path, FEEDBACK_TOPIC_WATCH_SECONDS="20") as (p, port):
        run = uuid.uuid4().hex[:8]
        started = time.monotonic()
        with httpx.Client(base_url=p.url, timeout=30) as client:
            post_before(p, client, run, 40)  # ~10 per partition: the positions the consumers keep
            stop_broker(p)
            start_broker(p, port)  # back at once
            assert time.monotonic() - started < 20, "the restart must come before the first check"
            deadline = time.monotonic() + 90
            for i in range(40):
                post_until_accepted(client, {"source_ref": f"{run}-after-{i}", "text": f"Order {i} was late"},
                                    deadline)
        where = f"source_ref LIKE '{run}-after-%'"
        wait_for(lambda: p.count(where) == 40, 120, what="the 40 records accepted after the restart in the warehouse")
        # and the first check, 20 s after the start, still sees that the topics were recreated
        wait_for(lambda: "topics were recreated" in p.log("processor"), 60,
                 what="the processor's first topic check noticing the restart that came before it")
        assert p.count(where) == 40


def topic_refs(p: Pipeline, topic: str, refs: list[str]) -> list[str]:
    """Which of ``refs`` a topic holds (diagnostics for a failure)."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(p.prefix + topic, bootstrap_servers=p.bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=3000)
    try:
        values = [m.value.decode(errors="replace") for m in consumer]
    finally:
        consumer.close()
    return [ref for ref in refs if any(f"\"{ref}\"" in v for v in values)]
