"""Webhook authenticity checks: Zendesk's documented signature, the generic HMAC, shared tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from datetime import UTC, datetime

import pytest

from connectors.tickets import auth
from pipeline.webhooks import WebhookRejected
from tests.conftest import TEST_CUSTOMER_KEY

SECRET = b"dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="
BODY = b'{"type":"zen:event-type:ticket.created","detail":{"id":"1"}}'


def zendesk_headers(body: bytes = BODY, secret: bytes = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = datetime.fromtimestamp(at if at is not None else time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    # the formula of Zendesk's documentation: base64(HMACSHA256(TIMESTAMP + BODY))
    sig = base64.b64encode(hmac.new(secret, stamp.encode() + body, hashlib.sha256).digest()).decode()
    return {"x-zendesk-webhook-signature": sig, "x-zendesk-webhook-signature-timestamp": stamp}


def reason_of(fn: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(WebhookRejected) as err:
        fn(*args, **kwargs)  # type: ignore[operator]
    assert err.value.status == 401
    return err.value.error


def test_zendesk_valid_signature_passes() -> None:
    auth.check_zendesk(zendesk_headers(), BODY, [SECRET], 300)
    # two Zendesk webhooks (events + CSAT trigger) have two signing secrets: either one passes
    auth.check_zendesk(zendesk_headers(secret=b"second"), BODY, [SECRET, b"second"], 300)
    assert auth.zendesk_signature(SECRET, "2025-01-01T00:00:00Z", BODY) == base64.b64encode(
        hmac.new(SECRET, b"2025-01-01T00:00:00Z" + BODY, hashlib.sha256).digest()).decode()


def test_zendesk_failures_have_reasons() -> None:
    headers = zendesk_headers()
    assert reason_of(auth.check_zendesk, {}, BODY, [SECRET], 300) == "missing_signature"
    assert reason_of(auth.check_zendesk, headers, BODY + b" ", [SECRET], 300) == "bad_signature"
    assert reason_of(auth.check_zendesk, zendesk_headers(secret=b"other"), BODY, [SECRET], 300) == "bad_signature"
    old = zendesk_headers(at=time.time() - 301)
    assert reason_of(auth.check_zendesk, old, BODY, [SECRET], 300) == "stale_timestamp"
    future = zendesk_headers(at=time.time() + 3600)
    assert reason_of(auth.check_zendesk, future, BODY, [SECRET], 300) == "stale_timestamp"
    auth.check_zendesk(zendesk_headers(at=time.time() - 250), BODY, [SECRET], 300)  # within tolerance


def test_generic_signature() -> None:
    stamp = str(int(time.time()))
    sig = "sha256=" + hmac.new(b"k", f"{stamp}.".encode() + BODY, hashlib.sha256).hexdigest()
    auth.check_generic({"x-feedback-signature": sig, "x-feedback-timestamp": stamp}, BODY, [b"k"], 300)
    assert reason_of(auth.check_generic, {"x-feedback-signature": sig}, BODY, [b"k"], 300) == "missing_signature"
    assert reason_of(auth.check_generic, {"x-feedback-signature": sig, "x-feedback-timestamp": stamp},
                     BODY, [b"wrong"], 300) == "bad_signature"
    old = str(int(time.time()) - 600)
    old_sig = auth.generic_signature(b"k", old, BODY)
    assert reason_of(auth.check_generic, {"x-feedback-signature": old_sig, "x-feedback-timestamp": old},
                     BODY, [b"k"], 300) == "stale_timestamp"
    assert reason_of(auth.check_generic, {"x-feedback-signature": auth.generic_signature(b"k", "soon", BODY),
                                          "x-feedback-timestamp": "soon"}, BODY, [b"k"], 300) == "bad_timestamp"


@pytest.mark.parametrize("headers,query", [
    ({"authorization": "Basic " + base64.b64encode(b"freshdesk:tok-123").decode()}, {}),
    ({"authorization": "Basic " + base64.b64encode(b"tok-123:X").decode()}, {}),  # API-key style
    ({"authorization": "Bearer tok-123"}, {}),
    ({"x-webhook-token": "tok-123"}, {}),
    ({}, {"token": "tok-123"}),
])
def test_token_accepted_where_admins_put_it(headers: dict[str, str], query: dict[str, str]) -> None:
    auth.check_token(headers, query, BODY, [b"old-token", b"tok-123"])


def test_token_failures() -> None:
    assert reason_of(auth.check_token, {}, {}, BODY, [b"tok"]) == "missing_token"
    assert reason_of(auth.check_token, {"authorization": "Bearer nope"}, {}, BODY, [b"tok"]) == "bad_token"
    assert reason_of(auth.check_token, {"authorization": "Basic !!!"}, {}, BODY, [b"tok"]) == "missing_token"


def test_jira_hub_signature() -> None:
    sig = "sha256=" + hmac.new(b"jira-secret", BODY, hashlib.sha256).hexdigest()
    auth.check_token({"x-hub-signature": sig}, {}, BODY, [b"jira-secret"], hub=True)
    assert reason_of(auth.check_token, {"x-hub-signature": sig}, {}, BODY + b"x", [b"jira-secret"],
                     hub=True) == "bad_signature"


def test_route_without_a_secret_answers_404() -> None:
    import asyncio

    import httpx
    from fastapi import FastAPI

    from connectors.http.app import read_limited
    from connectors.http.webhooks import create_router
    from pipeline import metrics
    from pipeline.config import HttpSettings

    app = FastAPI()
    app.include_router(create_router(HttpSettings(customer_hash_key=TEST_CUSTOMER_KEY, jira_webhook_token="t"),
                                     read_limited))
    before = metrics.REJECTED.labels("zendesk_webhook", "webhook_not_configured")._value.get()

    async def calls() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return (await client.post("/webhooks/zendesk", json={"type": "zen:event-type:ticket.created"}),
                    await client.post("/webhooks/jira", json={}))

    zendesk, jira = asyncio.run(calls())
    assert zendesk.status_code == 404 and zendesk.json()["error"] == "webhook_not_configured"
    assert "FEEDBACK_ZENDESK_WEBHOOK_SECRET" in zendesk.json()["message"]
    assert jira.status_code == 401 and jira.json()["error"] == "missing_token"  # configured: checked
    assert metrics.REJECTED.labels("zendesk_webhook", "webhook_not_configured")._value.get() == before + 1
