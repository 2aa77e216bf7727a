"""Issue 20 through the running pipeline: records produced straight into the raw topic are held to the
same bounds as the HTTP edge's (event time), and PII never reaches structured fields or metric labels."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from pipeline.schema import derive_feedback_id
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


def produce_raw(p: Pipeline, records: list[dict[str, Any]]) -> None:
    """What a trusted producer with write access to feedback.raw does: JSON values, the id as key."""
    producer = KafkaProducer(bootstrap_servers=p.bootstrap)
    try:
        for r in records:
            key = str(derive_feedback_id(r.get("source", "event"), r["source_ref"])).encode()
            producer.send(p.prefix + "feedback.raw", key=key, value=json.dumps(r).encode())
        producer.flush(30)
    finally:
        producer.close()


def test_a_far_future_event_time_is_dead_lettered_by_the_processor(pipeline: Pipeline) -> None:
    p, run = pipeline, uuid.uuid4().hex[:8]
    ahead = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    skew = (datetime.now(UTC) + timedelta(minutes=2)).isoformat()  # within the allowed clock skew
    records = [
        {"source_ref": f"{run}-future", "text": "Dated next month", "event_time": ahead},
        # a producer that also sets received_at ahead is measured against the processor's clock
        {"source_ref": f"{run}-both", "text": "Received next month too", "event_time": ahead, "received_at": ahead},
        {"source_ref": f"{run}-skew", "text": "Two minutes ahead", "event_time": skew},
        {"source_ref": f"{run}-now", "text": "Dated now"},
    ]
    before = p.metric("processor", "feedback_dead_lettered_total", stage="processor", reason="event_time_in_future")
    produce_raw(p, records)
    wait_for(lambda: p.count(f"source_ref IN ('{run}-now', '{run}-skew')") == 2, 90, what="valid records stored")
    letters = p.dead_letters(lambda d: d.reason == "event_time_in_future" and run in d.payload, expect=2, timeout=60)
    assert sorted(json.loads(d.original_bytes())["source_ref"] for d in letters) == [f"{run}-both", f"{run}-future"]
    assert all(d.stage == "processor" and "after its receipt" in d.detail for d in letters)
    assert p.count(f"source_ref IN ('{run}-future', '{run}-both')") == 0
    assert wait_for(lambda: p.metric("processor", "feedback_dead_lettered_total", stage="processor",
                                     reason="event_time_in_future") >= before + 2, 30, what="counter")


def test_pii_in_structured_fields_is_redacted_before_the_warehouse(pipeline: Pipeline) -> None:
    """A client that puts an address or a phone number in product, channel, thread_ref, tags or an id-like
    attribute finds placeholders in the warehouse; ids made only of digits stay."""
    p, run = pipeline, uuid.uuid4().hex[:8]
    attributes = {"customer_id": "ann@example.org", "group_id": "360001234567", "note": "ring +44 20 7946 0958"}
    record = {"source_ref": f"{run}-pii", "text": "The kettle leaks", "product": "kettle for ann@example.org",
              "channel": "+44 20 7946 0958", "thread_ref": "crm:ann@example.org", "tags": ["vip", "bob@example.com"],
              "attributes": attributes}
    r = httpx.post(f"{p.url}/v1/events", json=record, timeout=30)
    assert r.status_code == 202, r.text
    wait_for(lambda: p.count(f"source_ref = '{run}-pii'") == 1, 90, what="the record stored")
    row = p.rows(f"source_ref = '{run}-pii'")[0]
    stored = json.dumps({k: v for k, v in row.items() if k != "source_ref"}, default=str)
    for secret in ("ann@example.org", "bob@example.com", "7946 0958"):
        assert secret not in stored, f"{secret} reached the warehouse: {stored}"
    assert row["product"] == "kettle for [EMAIL]" and row["channel"] == "[PHONE]"
    assert row["thread_ref"] == "crm:[EMAIL]"
    tags = row["tags"] if isinstance(row["tags"], list) else json.loads(row["tags"])
    attributes = row["attributes"] if isinstance(row["attributes"], dict) else json.loads(row["attributes"])
    assert tags == ["vip", "[EMAIL]"]
    assert attributes["customer_id"] == "[EMAIL]" and attributes["group_id"] == "360001234567"
    assert attributes["note"] == "ring [PHONE]"
    # customer_ref takes only the keyed-hash form: an address there is refused at the edge, never stored
    plain = {"source_ref": f"{run}-ref", "text": "t", "customer_ref": "ann@example.org"}
    r = httpx.post(f"{p.url}/v1/events", json=plain, timeout=30)
    assert r.status_code == 422 and "customer_ref" in r.text, r.text
