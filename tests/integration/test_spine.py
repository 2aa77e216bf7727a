"""The spine, end to end through the real broker into SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from pipeline.config import CommonSettings
from pipeline.publisher import Publisher
from pipeline.schema import FeedbackRecord, derive_feedback_id
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


def test_event_reaches_warehouse_enriched(pipeline: Pipeline) -> None:
    ref = f"crm-{uuid.uuid4()}"
    r = httpx.post(f"{pipeline.url}/v1/events", json={
        "source_ref": ref,
        "text": "The parcel arrived two weeks late and support never answered my emails. Terrible.",
        "nps_score": 2, "csat_score": 1, "product": "widget-pro",
    })
    assert r.status_code == 202, r.text
    fid = r.json()["feedback_ids"][0]
    assert fid == str(derive_feedback_id("event", ref))
    rows = wait_for(lambda: pipeline.rows("source_ref = :r", {"r": ref}), 30, what="row")
    row = rows[0]
    assert row["source"] == "event"
    assert row["sentiment_label"] == "negative"
    assert row["sentiment_polarity"] < 0
    assert row["nps_class"] == "detractor"
    assert row["csat_score"] == 1
    assert row["product"] == "widget-pro"
    cats = pipeline.categories(row["feedback_id"])
    assert "delivery" in cats and "customer_support" in cats


def test_form_post_json_and_urlencoded(pipeline: Pipeline) -> None:
    sid = uuid.uuid4().hex[:16]
    r = httpx.post(f"{pipeline.url}/forms/default", data={
        "comment": "Love the new app, checkout is so easy to use!", "nps_score": "10",
        "csat_score": "5", "email": "Jane.Doe@example.com", "submission_id": sid, "website": "",
    })
    assert r.status_code == 202, r.text
    rows = wait_for(lambda: pipeline.rows("source_ref = :r", {"r": f"default:{sid}"}), 30, what="form row")
    row = rows[0]
    assert row["source"] == "webform" and row["channel"] == "form:default"
    assert row["sentiment_label"] == "positive" and row["nps_class"] == "promoter"
    # the address never reaches the warehouse, only its keyed hash
    assert row["customer_ref"].startswith("c_") and "example.com" not in row["customer_ref"]
    assert "praise" in pipeline.categories(row["feedback_id"])

    browser = httpx.post(f"{pipeline.url}/forms/default", headers={"Accept": "text/html"},
                         files={"comment": (None, "Fine."), "nps_score": (None, "7")})
    assert browser.status_code == 200 and "Thank you" in browser.text


def test_same_record_twice_is_one_row(pipeline: Pipeline) -> None:
    ref = f"dup-{uuid.uuid4()}"
    body = {"source_ref": ref, "text": "Billing charged me twice this month."}
    for _ in range(2):
        assert httpx.post(f"{pipeline.url}/v1/events", json=body).status_code == 202
    wait_for(lambda: pipeline.count(f"source_ref = '{ref}'") == 1, 30, what="row")
    # a later marker proves the second copy has been through the pipeline too
    marker = f"marker-{uuid.uuid4()}"
    httpx.post(f"{pipeline.url}/v1/events", json={"source_ref": marker, "text": "marker"})
    wait_for(lambda: pipeline.count(f"source_ref = '{marker}'") == 1, 30, what="marker")
    assert pipeline.count(f"source_ref = '{ref}'") == 1


def test_thousand_concurrent_posts_exactly_thousand_rows(pipeline: Pipeline) -> None:
    run = uuid.uuid4().hex[:8]

    async def post_all() -> list[int]:
        limits = httpx.Limits(max_connections=50)
        async with httpx.AsyncClient(base_url=pipeline.url, limits=limits, timeout=60) as client:
            async def one(i: int) -> int:
                resp = await client.post("/v1/events", json={
                    "source_ref": f"load-{run}-{i}", "text": f"Order {i}: delivery was quick, thanks!",
                    "nps_score": i % 11})
                return resp.status_code
            return await asyncio.gather(*(one(i) for i in range(1000)))

    codes = asyncio.run(post_all())
    assert codes.count(202) == 1000, {c: codes.count(c) for c in set(codes)}
    where = f"source_ref LIKE 'load-{run}-%'"
    wait_for(lambda: pipeline.count(where) == 1000, 120, what="1000 rows")
    assert pipeline.count(where) == 1000
    assert pipeline.count(f"feedback_id IN (SELECT feedback_id FROM feedback WHERE {where})",
                          table="feedback_categories") >= 1000


@pytest.mark.parametrize(
    ("content_type", "body", "status", "reason"),
    [
        ("application/json", b'{"source_ref": "x", "text": ', 400, "malformed_json"),
        ("text/plain", b"hello", 415, "unsupported_media_type"),
        ("application/json", json.dumps({"source_ref": "big", "text": "x" * 70_000}).encode(), 413,
         "record_too_large"),
        ("application/json", b'{"source_ref": "n", "text": "ok", "nps_score": 11}', 422, "validation_failed"),
        ("application/json", b'[]', 422, "empty_batch"),
    ],
)
def test_bad_input_gets_4xx_json_and_a_counter(pipeline: Pipeline, content_type: str, body: bytes,
                                               status: int, reason: str) -> None:
    before = pipeline.metric("http", "feedback_rejected_total", source="event", reason=reason)
    r = httpx.post(f"{pipeline.url}/v1/events", content=body, headers={"Content-Type": content_type})
    assert r.status_code == status
    payload = r.json()
    assert payload["error"] == reason and payload["message"]
    assert pipeline.metric("http", "feedback_rejected_total", source="event", reason=reason) == before + 1


def test_invalid_form_fields_are_422_with_details(pipeline: Pipeline) -> None:
    r = httpx.post(f"{pipeline.url}/forms/default", data={"comment": "ok", "nps_score": "12"})
    assert r.status_code == 422
    assert r.json()["details"][0]["loc"] == ["nps_score"]
    r = httpx.post(f"{pipeline.url}/forms/default", data={"comment": " ", "nps_score": ""})  # neither
    assert r.status_code == 422 and "a score or a comment" in r.json()["details"][0]["msg"]
    r = httpx.post(f"{pipeline.url}/forms/default", content=b"<xml/>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 415


def test_honeypot_is_answered_but_not_stored(pipeline: Pipeline) -> None:
    sid = uuid.uuid4().hex[:16]
    before = pipeline.metric("http", "feedback_rejected_total", source="webform", reason="honeypot")
    r = httpx.post(f"{pipeline.url}/forms/default",
                   data={"comment": "buy cheap pills", "website": "http://spam", "submission_id": sid})
    assert r.status_code == 202 and r.json()["accepted"] == 0
    assert pipeline.metric("http", "feedback_rejected_total", source="webform", reason="honeypot") == before + 1


def test_record_failing_in_processor_goes_to_dlq(pipeline: Pipeline) -> None:
    ref = f"invisible-{uuid.uuid4()}"
    r = httpx.post(f"{pipeline.url}/v1/events", json={"source_ref": ref, "text": "\u200b\u200b\u2060"})
    assert r.status_code == 202  # valid for the schema: the processor finds it has no visible text
    fid = uuid.UUID(r.json()["feedback_ids"][0])
    letters = pipeline.dead_letters(lambda d: d.feedback_id == fid)
    assert letters and letters[0].stage == "processor" and letters[0].reason == "empty_text"
    assert json.loads(letters[0].original_bytes())["source_ref"] == ref
    assert pipeline.count(f"source_ref = '{ref}'") == 0


def test_schema_violation_produced_into_raw_goes_to_dlq(pipeline: Pipeline) -> None:
    settings = CommonSettings(kafka_bootstrap=pipeline.bootstrap, topic_prefix=pipeline.prefix)
    pub = Publisher(settings)
    marker = f"bad-{uuid.uuid4()}"
    try:
        pub.publish_bytes(pub.topics.raw, [
            (None, json.dumps({"source_ref": marker, "text": "ok", "nps_score": "eleven"}).encode()),
            (None, b"\xff\xfe not json"),
        ])
    finally:
        pub.close()
    letters = pipeline.dead_letters(lambda d: marker in d.payload and d.reason == "schema_violation")
    assert letters and "nps_score" in letters[0].detail
    binary = pipeline.dead_letters(lambda d: d.payload_encoding == "base64" and d.reason == "malformed_json")
    assert binary and binary[0].original_bytes() == b"\xff\xfe not json"


def test_sink_killed_midstream_loses_nothing(pipeline: Pipeline) -> None:
    run = uuid.uuid4().hex[:8]
    total = 4000
    settings = CommonSettings(kafka_bootstrap=pipeline.bootstrap, topic_prefix=pipeline.prefix)
    pub = Publisher(settings)
    try:
        records = [FeedbackRecord(source_ref=f"kill-{run}-{i}", text=f"Item {i} was broken on arrival")
                   for i in range(total)]
        for start in range(0, total, 500):
            pub.publish(records[start:start + 500])
    finally:
        pub.close()
    where = f"source_ref LIKE 'kill-{run}-%'"
    wait_for(lambda: pipeline.count(where) > 0, 60, interval=0.05, what="first rows")
    pipeline.kill("sink")
    partial = pipeline.count(where)
    pipeline.start("sink")
    wait_for(lambda: pipeline.count(where) == total, 120, what=f"{total} rows after restart")
    assert pipeline.count(where) == total
    assert partial < total, "the sink was not killed mid-stream"
