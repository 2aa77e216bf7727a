"""Typeform's form_response webhook: signature, mapping of the documented payload, and the route."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from connectors.http.app import read_limited
from connectors.http.webhooks import create_router
from connectors.typeform.webhook import TypeformWebhook, map_form_response, signature
from pipeline.config import HttpSettings
from pipeline.errors import RecordError
from pipeline.schema import customer_ref
from pipeline.testing import MemoryPublisher
from pipeline.webhooks import WebhookRejected
from tests.conftest import TEST_CUSTOMER_KEY

SECRET = "typeform-secret"
KEY = b"k"


def form_response(token: str | None = None, comment: str | None = "Checkout kept failing on my phone.",
                  nps: int | None = 3, stars: int | None = 2, email: str | None = "Ana@Example.com",
                  form_id: str = "lT4Z3j") -> dict[str, Any]:
    """A webhook delivery in the shape of Typeform's documented example payload (form_response with its
    definition and typed answers: text, number, email, choice, boolean)."""
    fields = [
        {"id": "DlXFaesGBpoF", "ref": "comment", "type": "long_text", "title": "What could we do better?",
         "properties": {}},
        {"id": "SMEUb7VJz92Q", "ref": "recommend", "type": "opinion_scale",
         "title": "How likely are you to recommend us to a friend?",
         "properties": {"steps": 11, "start_at_one": False}},
        {"id": "JwWggjAKtOkA", "ref": "stars", "type": "rating", "title": "How would you rate your order?",
         "properties": {"steps": 5, "shape": "star"}},
        {"id": "KoJxDM3c6x8h", "ref": "email", "type": "email", "title": "Your e-mail, if we may follow up"},
        {"id": "k6TP9oLGgHjl", "ref": "channel", "type": "multiple_choice", "title": "Where did you buy?"},
        {"id": "RUqkXSeXBXSd", "ref": "again", "type": "yes_no", "title": "Would you buy again?"},
    ]
    answers: list[dict[str, Any]] = []
    if comment is not None:
        answers.append({"type": "text", "text": comment, "field": {"id": "DlXFaesGBpoF", "type": "long_text",
                                                                   "ref": "comment"}})
    if nps is not None:
        answers.append({"type": "number", "number": nps, "field": {"id": "SMEUb7VJz92Q", "type": "opinion_scale",
                                                                   "ref": "recommend"}})
    if stars is not None:
        answers.append({"type": "number", "number": stars, "field": {"id": "JwWggjAKtOkA", "type": "rating",
                                                                     "ref": "stars"}})
    if email is not None:
        answers.append({"type": "email", "email": email, "field": {"id": "KoJxDM3c6x8h", "type": "email",
                                                                   "ref": "email"}})
    answers.append({"type": "choice", "choice": {"label": "Online"},
                    "field": {"id": "k6TP9oLGgHjl", "type": "multiple_choice", "ref": "channel"}})
    answers.append({"type": "boolean", "boolean": False, "field": {"id": "RUqkXSeXBXSd", "type": "yes_no",
                                                                   "ref": "again"}})
    return {
        "event_id": "01H" + uuid.uuid4().hex[:10].upper(),
        "event_type": "form_response",
        "form_response": {
            "form_id": form_id,
            "token": token or uuid.uuid4().hex,
            "landed_at": "2026-11-30T09:58:40Z",
            "submitted_at": "2026-11-30T10:02:11Z",
            "hidden": {"product": "mobile-app"},
            "calculated": {"score": 0},
            "variables": [{"key": "score", "type": "number", "number": 0}],
            "definition": {"id": form_id, "title": "After-purchase survey", "fields": fields},
            "answers": answers,
        },
    }


def test_signature_is_base64_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"event_type":"form_response"}'
    expected = "sha256=" + base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()
    assert signature(SECRET.encode(), body) == expected
    source = TypeformWebhook(HttpSettings(customer_hash_key=TEST_CUSTOMER_KEY, typeform_webhook_secret=f"old,{SECRET}"))
    source.verify({"typeform-signature": expected}, body, {})  # the second of two secrets matches
    for headers, reason in (({}, "missing_signature"), ({"typeform-signature": expected}, "bad_signature")):
        with pytest.raises(WebhookRejected) as err:
            source.verify(headers, body + (b" " if headers else b""), {})
        assert err.value.error == reason and err.value.status == 401


def test_the_documented_payload_maps_text_nps_stars_customer_and_product() -> None:
    payload = form_response(token="a3a12ec67a1365927098a606107fac15")
    (record,) = map_form_response(payload, KEY).records
    assert record.text == "Checkout kept failing on my phone."
    assert (record.nps_score, record.stars, record.csat_score) == (3, 2, None)
    assert record.customer_ref == customer_ref("ana@example.com", KEY) and "Ana" not in record.model_dump_json()
    assert record.channel == "typeform:lT4Z3j" and record.product == "mobile-app"
    assert record.source_ref == "typeform:lT4Z3j:a3a12ec67a1365927098a606107fac15"
    assert record.event_time.isoformat().startswith("2026-11-30T10:02:11")
    assert record.attributes["typeform_title"] == "After-purchase survey"
    # a re-delivery (a new event id) keeps the feedback id
    again = form_response(token="a3a12ec67a1365927098a606107fac15")
    assert map_form_response(again, KEY).records[0].feedback_id == record.feedback_id


def test_nps_question_csat_scale_and_unknown_scales() -> None:
    payload = form_response(nps=None, stars=None)
    response = payload["form_response"]
    response["definition"]["fields"] += [
        {"id": "nps1", "type": "nps", "title": "NPS"},
        {"id": "csat1", "type": "opinion_scale", "title": "Satisfied?",
         "properties": {"steps": 5, "start_at_one": True}},
        {"id": "odd1", "type": "opinion_scale", "title": "1-7", "properties": {"steps": 7, "start_at_one": True}},
    ]
    response["answers"] += [
        {"type": "number", "number": 9, "field": {"id": "nps1", "type": "nps"}},
        {"type": "number", "number": 4, "field": {"id": "csat1", "type": "opinion_scale"}},
        {"type": "number", "number": 6, "field": {"id": "odd1", "type": "opinion_scale"}},
    ]
    (record,) = map_form_response(payload, KEY).records
    assert (record.nps_score, record.csat_score, record.stars) == (9, 4, None)


def test_unusable_payloads_are_refused_and_a_response_without_text_is_skipped() -> None:
    assert map_form_response(form_response(comment=None), KEY).skipped == ["no_text"]
    for payload, reason in (([], "invalid_payload"), ({"event_type": "form_deleted"}, "unknown_event"),
                            ({"event_type": "form_response", "form_response": {"form_id": "x"}}, "invalid_payload")):
        with pytest.raises(RecordError) as err:
            map_form_response(payload, KEY)
        assert err.value.reason == reason
    bad = form_response()
    bad["form_response"]["answers"][1]["number"] = "ten"
    with pytest.raises(RecordError):
        map_form_response(bad, KEY)


def _app(settings: HttpSettings, publisher: MemoryPublisher) -> FastAPI:
    app = FastAPI()

    async def publish(records: list[Any], source: str) -> None:
        await publisher.publish_async(records)

    app.state.publish = publish
    app.include_router(create_router(settings, read_limited))
    return app


def _post(app: FastAPI, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.post("/webhooks/typeform", content=body, headers=headers)

    return asyncio.run(call())


def test_route_publishes_a_signed_delivery_and_refuses_the_rest() -> None:
    publisher = MemoryPublisher()
    app = _app(HttpSettings(customer_hash_key=TEST_CUSTOMER_KEY, typeform_webhook_secret=SECRET), publisher)
    body = json.dumps(form_response()).encode()
    signed = {"Content-Type": "application/json", "Typeform-Signature": signature(SECRET.encode(), body)}
    ok = _post(app, body, signed)
    assert ok.status_code == 202 and ok.json()["accepted"] == 1
    assert [str(r.feedback_id) for r in publisher.records] == ok.json()["feedback_ids"]
    forged = _post(app, body, {**signed, "Typeform-Signature": signature(b"other", body)})
    assert forged.status_code == 401 and forged.json()["error"] == "bad_signature"
    unknown = json.dumps({"event_type": "form_deleted"}).encode()
    refused = _post(app, unknown, {**signed, "Typeform-Signature": signature(SECRET.encode(), unknown)})
    assert refused.status_code == 422 and refused.json()["error"] == "unknown_event"
    assert len(publisher.records) == 1


def test_route_without_a_secret_answers_404_naming_the_setting() -> None:
    publisher = MemoryPublisher()
    app = _app(HttpSettings(customer_hash_key=TEST_CUSTOMER_KEY), publisher)
    answer = _post(app, b"{}", {"Content-Type": "application/json"})
    assert answer.status_code == 404 and answer.json()["error"] == "webhook_not_configured"
    assert "FEEDBACK_TYPEFORM_WEBHOOK_SECRET" in answer.json()["message"] and not publisher.records
