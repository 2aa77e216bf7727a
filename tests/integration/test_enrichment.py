"""Enrichment through the broker: redaction, language and aspects visible in the warehouse rows."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import text

from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


def aspects(pipeline: Pipeline, feedback_id: object) -> list[tuple[int, str, str]]:
    with pipeline.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT sentence, category, sentiment_label FROM feedback_aspects WHERE feedback_id = :f "
            "ORDER BY sentence, category"), {"f": feedback_id})
        return [(r[0], r[1], r[2]) for r in rows]


def test_aspects_and_redaction_reach_the_warehouse(pipeline: Pipeline) -> None:
    ref = f"enrich-{uuid.uuid4()}"
    r = httpx.post(f"{pipeline.url}/v1/events", timeout=30, json={
        "source_ref": ref, "subject": "Order for jane.doe@example.com",
        "text": ("The parcel arrived two weeks late and the box was damaged. "
                 "The support agent was lovely and sorted it out quickly. "
                 "Call me on +44 20 7946 0958 or mail jane.doe@example.com, card 4111 1111 1111 1111."),
    })
    assert r.status_code == 202, r.text
    rows = wait_for(lambda: pipeline.rows("source_ref = :r", {"r": ref}), 60, what="enriched row")
    row = rows[0]
    assert "jane.doe" not in row["text"] and "7946" not in row["text"] and "4111" not in row["text"]
    assert "[EMAIL]" in row["text"] and "[PHONE]" in row["text"] and "[CARD]" in row["text"]
    assert row["subject"] == "Order for [EMAIL]"
    assert row["redacted"] is True or row["redacted"] == 1
    redactions = json.loads(row["redactions"]) if isinstance(row["redactions"], str) else row["redactions"]
    assert redactions == {"email": 2, "phone": 1, "card": 1}  # JSON column: text in SQLite
    assert row["detected_language"] == "en" and row["sentiment_analyzer"] == "ensemble"
    assert -1 <= row["sentiment_score"] <= 1 and 0 <= row["sentiment_confidence"] <= 1
    found = wait_for(lambda: aspects(pipeline, row["feedback_id"]), 30, what="aspect rows")
    assert (0, "delivery", "negative") in found
    assert (1, "customer_support", "positive") in found
    assert {s for s, _, _ in found} == {0, 1, 2}
    # the same record again: still one set of aspect rows (idempotent)
    assert httpx.post(f"{pipeline.url}/v1/events", timeout=30, json={
        "source_ref": ref, "text": "The parcel arrived two weeks late."}).status_code == 202
    wait_for(lambda: aspects(pipeline, row["feedback_id"]) == [(0, "delivery", "negative")], 60,
             what="aspects replaced by the new version")


def test_non_english_is_tagged_not_scored(pipeline: Pipeline) -> None:
    ref = f"enrich-de-{uuid.uuid4()}"
    r = httpx.post(f"{pipeline.url}/v1/events", timeout=30, json={
        "source_ref": ref, "text": "Das Paket kam zu spät an und niemand hat auf meine E-Mails geantwortet."})
    assert r.status_code == 202, r.text
    row = wait_for(lambda: pipeline.rows("source_ref = :r", {"r": ref}), 60, what="row")[0]
    assert row["detected_language"] == "de" and row["sentiment_label"] == "not_assessed"
    assert row["sentiment_score"] is None
    assert aspects(pipeline, row["feedback_id"]) == [(0, "other", "not_assessed")]
    assert pipeline.metric("processor", "feedback_sentiment_not_assessed_total", language="de") >= 1
