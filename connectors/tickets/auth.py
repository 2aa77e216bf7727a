"""Authenticity checks of the webhook sources; each failure is a ``WebhookRejected`` (401) with its reason.

- Zendesk: ``X-Zendesk-Webhook-Signature`` = base64(HMAC-SHA256(secret, timestamp + body)) with
  ``X-Zendesk-Webhook-Signature-Timestamp`` (ISO 8601) no older than the tolerance.
- Generic: ``X-Feedback-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>`` with
  ``X-Feedback-Timestamp`` (Unix seconds) no older than the tolerance.
- Freshdesk and Jira: the shared token as configured by their admins: HTTP basic auth (token as
  password or user name), ``Authorization: Bearer``, an ``X-Webhook-Token`` header or a ``token``
  query parameter; Jira admin webhooks with a secret send ``X-Hub-Signature: sha256=<hex HMAC>``.

Each setting may hold several comma-separated secrets (one per Zendesk webhook, or old and new
during a rotation); a request passes when one of them matches. All comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Mapping, Sequence

from connectors.tickets.model import parse_time
from pipeline.webhooks import WebhookRejected


def _unauthorized(reason: str, message: str) -> WebhookRejected:
    return WebhookRejected(reason, message, 401)


def check_fresh(stamp: str, tolerance: int, now: float | None = None) -> None:
    when = parse_time(stamp)
    if when is None:
        raise _unauthorized("bad_timestamp", "the signature timestamp is not a valid time")
    age = (now if now is not None else time.time()) - when.timestamp()
    if abs(age) > tolerance:
        raise _unauthorized("stale_timestamp", f"the signature timestamp is more than {tolerance}s away from now")


def zendesk_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret, timestamp.encode() + body, hashlib.sha256).digest()).decode()


def _matches(given: str, expected: list[str]) -> bool:
    # compare against every candidate so timing does not reveal which one nearly matched
    return any([hmac.compare_digest(given.encode(), e.encode()) for e in expected])


def check_zendesk(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes], tolerance: int,
                  now: float | None = None) -> None:
    signature = headers.get("x-zendesk-webhook-signature", "")
    stamp = headers.get("x-zendesk-webhook-signature-timestamp", "")
    if not signature or not stamp:
        raise _unauthorized("missing_signature", "X-Zendesk-Webhook-Signature and -Timestamp are required")
    if not _matches(signature.strip(), [zendesk_signature(s, stamp, body) for s in secrets]):
        raise _unauthorized("bad_signature", "the webhook signature does not match")
    check_fresh(stamp, tolerance, now)


def generic_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def check_generic(headers: Mapping[str, str], body: bytes, secrets: Sequence[bytes], tolerance: int,
                  now: float | None = None) -> None:
    signature = headers.get("x-feedback-signature", "")
    stamp = headers.get("x-feedback-timestamp", "")
    if not signature or not stamp:
        raise _unauthorized("missing_signature", "X-Feedback-Signature and X-Feedback-Timestamp are required")
    if not _matches(signature.strip().lower(), [generic_signature(s, stamp, body) for s in secrets]):
        raise _unauthorized("bad_signature", "the webhook signature does not match")
    check_fresh(stamp, tolerance, now)


def hub_signature(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def _basic_credentials(auth: str) -> list[bytes]:
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return []
    user, _, password = decoded.partition(b":")
    return [password, user]


def check_token(headers: Mapping[str, str], query: Mapping[str, str], body: bytes, tokens: Sequence[bytes],
                hub: bool = False) -> None:
    """The shared token in any of the documented places (or, with ``hub``, an X-Hub-Signature)."""
    if hub and headers.get("x-hub-signature"):
        if _matches(headers["x-hub-signature"].strip().lower(), [hub_signature(t, body) for t in tokens]):
            return
        raise _unauthorized("bad_signature", "X-Hub-Signature does not match")
    auth = headers.get("authorization", "")
    candidates: list[bytes] = []
    if auth.lower().startswith("basic "):
        candidates = _basic_credentials(auth)
    elif auth.lower().startswith("bearer "):
        candidates = [auth[7:].strip().encode()]
    if headers.get("x-webhook-token"):
        candidates.append(headers["x-webhook-token"].strip().encode())
    if query.get("token"):
        candidates.append(query["token"].encode())
    if not candidates:
        raise _unauthorized("missing_token", "a webhook token is required (basic auth, bearer, X-Webhook-Token)")
    # compare every pair so timing does not reveal which one nearly matched
    if not any([hmac.compare_digest(c, t) for c in candidates for t in tokens]):
        raise _unauthorized("bad_token", "the webhook token does not match")
