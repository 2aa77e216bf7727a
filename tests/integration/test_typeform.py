"""Typeform webhooks against the running HTTP service: documented payloads, signed, into the warehouse."""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Iterator

import httpx
import pytest

from connectors.typeform.webhook import signature
from pipeline.broker import port_open
from pipeline.schema import customer_ref
from tests.conftest import TEST_CUSTOMER_KEY
from tests.integration.harness import Pipeline, wait_for
from tests.unit.test_typeform import form_response

pytestmark = pytest.mark.integration

SECRET = "typeform-signing-secret"
VARIABLE = "FEEDBACK_TYPEFORM_WEBHOOK_SECRET"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def typeform(pipeline: Pipeline) -> Iterator[Pipeline]:
    """The session pipeline with its HTTP service restarted with a Typeform secret set."""
    if pipeline.env.get(VARIABLE) != SECRET:
        pipeline.env[VARIABLE] = SECRET
        pipeline.kill("http", signal.SIGTERM)
        wait_for(lambda: not port_open("127.0.0.1", pipeline.http_port), 30, what="http stopped")
        pipeline.start("http")
        wait_for(lambda: _ready(pipeline.url), 60, what="http ready with the Typeform secret")
    yield pipeline


def post(p: Pipeline, body: bytes, secret: str = SECRET) -> httpx.Response:
    headers = {"Content-Type": "application/json", "Typeform-Signature": signature(secret.encode(), body)}
    return httpx.post(f"{p.url}/webhooks/typeform", content=body, headers=headers, timeout=30)


def test_signed_responses_reach_the_warehouse_once_and_forgeries_are_refused(typeform: Pipeline) -> None:
    p = typeform
    token = uuid.uuid4().hex
    body = json.dumps(form_response(token=token, comment="The courier left the parcel in the rain.",
                                    nps=2, stars=1, email="ana@example.com")).encode()
    first = post(p, body)
    assert first.status_code == 202, first.text
    assert first.json()["accepted"] == 1
    (feedback_id,) = first.json()["feedback_ids"]
    # Typeform retries a delivery it did not see answered: same response, new event id, same feedback id
    again = post(p, json.dumps(form_response(token=token, comment="The courier left the parcel in the rain.",
                                             nps=2, stars=1, email="ana@example.com")).encode())
    assert again.status_code == 202 and again.json()["feedback_ids"] == [feedback_id]
    where = f"source_ref = 'typeform:lT4Z3j:{token}'"
    wait_for(lambda: p.count_or_zero(where) == 1, 90, what="the Typeform response in the warehouse")
    (row,) = p.rows(where)
    assert uuid.UUID(str(row["feedback_id"])) == uuid.UUID(feedback_id)
    assert (row["nps_score"], row["stars"], row["channel"], row["source"]) == (2, 1, "typeform:lT4Z3j", "webform")
    assert row["customer_ref"] == customer_ref("ana@example.com", TEST_CUSTOMER_KEY.encode())
    assert row["text"] == "The courier left the parcel in the rain." and row["product"] == "mobile-app"

    before = p.metric("http", "feedback_rejected_total", source="typeform_webhook", reason="bad_signature")
    forged = post(p, body, secret="not-the-secret")
    assert forged.status_code == 401 and forged.json()["error"] == "bad_signature"
    assert p.metric("http", "feedback_rejected_total", source="typeform_webhook",
                    reason="bad_signature") == before + 1


def test_a_response_without_text_is_skipped_and_a_foreign_event_refused(typeform: Pipeline) -> None:
    p = typeform
    skipped = post(p, json.dumps(form_response(comment=None)).encode())
    assert skipped.status_code == 202 and skipped.json() == {"accepted": 0, "feedback_ids": [],
                                                             "skipped": ["no_text"]}
    foreign = post(p, json.dumps({"event_id": "x", "event_type": "form_deleted"}).encode())
    assert foreign.status_code == 422 and foreign.json()["error"] == "unknown_event"
    malformed = post(p, b"{not json")
    assert malformed.status_code == 400 and malformed.json()["error"] == "malformed_json"
