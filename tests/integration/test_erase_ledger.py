"""Erasure that reaches Kafka: `feedback erase` writes the erasure ledger, and neither the warehouse sink
(an erased customer's record redelivered from the topics) nor DLQ replay writes the customer back."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event, text

from pipeline.config import CommonSettings, SinkSettings
from pipeline.publisher import Publisher
from pipeline.schema import CategoryTag, DeadLetter, EnrichedFeedback, Sentiment, customer_ref
from sinks.warehouse.consumer import WarehouseSink
from sinks.warehouse.db import migrate
from sinks.warehouse.ledger import record_erased
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import Pipeline, wait_for
from tests.integration.warehouse_data import run_cli

pytestmark = pytest.mark.integration

ENV_KEYS = ("FEEDBACK_KAFKA_BOOTSTRAP", "FEEDBACK_TOPIC_PREFIX", "FEEDBACK_WAREHOUSE_URL", "FEEDBACK_DATA_DIR",
            "FEEDBACK_CUSTOMER_HASH_KEY")


@pytest.fixture(scope="session", autouse=True)
def _schema_before_the_pipeline(warehouse: Engine) -> None:
    migrate(warehouse)


def feedback(p: Pipeline, args: list[str]) -> dict[str, Any]:
    env = {k: p.env[k] for k in ENV_KEYS} | {"FEEDBACK_LOG_FORMAT": "json"}
    result = run_cli([*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_an_erased_customer_is_not_written_back_by_the_sink_or_replay(pipeline: Pipeline) -> None:
    p, run = pipeline, uuid.uuid4().hex[:8]
    address = f"ann.{run}@example.org"
    ref = customer_ref(address, TEST_CUSTOMER_KEY.encode())  # a client that holds the key sends the hash
    record = {"source_ref": f"{run}-ann", "text": "The kettle leaks", "customer_ref": ref}
    assert httpx.post(f"{p.url}/v1/events", json=record, timeout=30).status_code == 202
    wait_for(lambda: p.count(f"source_ref = '{run}-ann'") == 1, 90, what="the customer's record stored")

    erased = feedback(p, ["erase", "--email", address])
    assert erased["deleted"]["feedback"] == 1 and erased["ledgered"] == 2  # with and without key id
    with p.engine.connect() as conn:
        ledger = set(conn.execute(text("SELECT erased_ref FROM erasure_ledger")).scalars())
    assert ref in ledger and not any("@" in r for r in ledger)  # keyed hashes, never the address

    # the same record comes through the topics again (a redelivery, a re-send from the raw topic)
    before = p.metric("sink", "feedback_erased_dropped_total", stage="sink")
    assert httpx.post(f"{p.url}/v1/events", json=record, timeout=30).status_code == 202
    other = {"source_ref": f"{run}-bob", "text": "Fine service"}
    assert httpx.post(f"{p.url}/v1/events", json=other, timeout=30).status_code == 202
    wait_for(lambda: p.metric("sink", "feedback_erased_dropped_total", stage="sink") >= before + 1, 90,
             what="the erased customer's record dropped by the sink")
    wait_for(lambda: p.count(f"source_ref = '{run}-bob'") == 1, 90, what="the sink goes on")
    assert p.count(f"source_ref = '{run}-ann'") == 0
    assert address not in p.log("sink") and ref not in p.log("sink")  # the log line names the feedback id only

    # a dead letter of the erased customer is not replayed
    letter = DeadLetter.for_payload(json.dumps(record | {"source_ref": f"{run}-dlq"}).encode(), stage="processor",
                                    reason="erase_test", detail="a letter from before the erasure")
    pub = Publisher(CommonSettings(kafka_bootstrap=p.bootstrap, topic_prefix=p.prefix))
    try:
        pub.publish_bytes(pub.topics.dlq, [(None, letter.model_dump_json().encode())])
    finally:
        pub.close()
    p.dead_letters(lambda d: d.reason == "erase_test" and run in d.payload)
    replayed = feedback(p, ["replay", "--from-dlq", "--reason", "erase_test"])
    assert replayed["erased"] == 1 and replayed["replayed"] == 0


def _item(run: str, n: int, ref: str | None) -> EnrichedFeedback:
    return EnrichedFeedback(source_ref=f"ledger-{run}-{uuid.uuid4().hex[:8]}-{n}", text="late", customer_ref=ref,
                            sentiment=Sentiment(polarity=-0.5, subjectivity=0.3, label="negative"),
                            categories=[CategoryTag(name="delivery", confidence=0.8)])


def test_the_sink_reads_the_ledger_once_per_batch(pg_schema_url: str, tmp_path: Path) -> None:
    """On PostgreSQL: one query of the ledger per batch (the rows added since the last), whatever its size."""
    sink = WarehouseSink(SinkSettings(warehouse_url=pg_schema_url, customer_hash_key=TEST_CUSTOMER_KEY))
    sink.setup()
    run = uuid.uuid4().hex[:8]  # the schema is the session's: count this run's rows only
    gone = customer_ref("gone@example.org", TEST_CUSTOMER_KEY.encode())
    kept = customer_ref("kept@example.org", TEST_CUSTOMER_KEY.encode())
    with sink.engine.begin() as conn:
        record_erased(conn, [gone])
    statements: list[str] = []
    event.listen(sink.engine, "before_cursor_execute",
                 lambda conn, cursor, stmt, *a: statements.append(stmt) if "erasure_ledger" in stmt else None)
    try:
        for _ in range(3):
            batch = [_item(run, n, gone if n % 2 else kept) for n in range(200)]
            assert sink.write(batch) == []
        assert len(statements) == 3
        with sink.engine.connect() as conn:
            refs = conn.execute(text("SELECT customer_ref, count(*) FROM feedback WHERE source_ref LIKE :like "
                                     "GROUP BY customer_ref"), {"like": f"ledger-{run}-%"}).all()
        assert dict(refs) == {kept: 300}
    finally:
        sink.close()
