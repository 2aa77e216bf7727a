"""Protections of the public HTTP surface: API tokens, rate limits, CORS allow-list, security headers.

Guarantees: a client over its form rate gets ``429`` with ``Retry-After``; a request with too many
headers gets ``431``; every response carries ``nosniff``/referrer/permissions headers and HTML pages
a strict Content-Security-Policy whose only inline style is the nonce'd one of our templates;
cross-origin browser calls are allowed only from ``FEEDBACK_CORS_ORIGINS``. A ``/v1/events`` record
can only speak for its caller (:func:`admit_event`): ``source=event`` or a source its token allows,
a ``source_ref`` in the token's namespace, no ticket state, and the caller's ``origin``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, get_args

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.http.errors import ApiError, error_body
from pipeline import metrics
from pipeline.config import HttpSettings
from pipeline.errors import ConfigError
from pipeline.schema import MAX_FUTURE_EVENT, FeedbackRecord, Source

TOKEN_NAME = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
SOURCES = frozenset(get_args(Source))
#: Attributes that carry a support ticket's state into the ``tickets`` table: only the ticket
#: connectors (their webhooks and pollers) may send them, never ``/v1/events``.
TICKET_STATE_PREFIX = "ticket_"
TICKET_STATE_KEYS = frozenset({"csat_raw", "csat_has_comment"})


@dataclass(frozen=True)
class ApiToken:
    """One ``FEEDBACK_API_TOKENS`` entry: ``token``, ``name:token`` or ``name:token:source1|source2``.

    Guarantees: ``origin`` names the caller on every record it sends (``event:<name>``; an unnamed
    token ``event:token-<12 hex digits of its SHA-256>``, stable and not the token); a named token's
    ``source_ref`` values live in its own namespace (``<name>:<source_ref>``); ``sources`` are the
    sources besides ``event`` it may send.
    """

    secret: bytes = field(repr=False)
    name: str | None = None
    sources: frozenset[str] = frozenset()

    @property
    def origin(self) -> str:
        if self.name:
            return f"event:{self.name}"
        return "event:token-" + hashlib.sha256(self.secret).hexdigest()[:12]


def parse_api_tokens(values: list[str]) -> list[ApiToken]:
    """The tokens of ``FEEDBACK_API_TOKENS``; a malformed entry raises ConfigError naming the variable."""
    tokens: list[ApiToken] = []
    for position, value in enumerate(values, 1):
        parts = value.split(":")
        if "change-me" in value.lower():
            raise ConfigError(f"FEEDBACK_API_TOKENS: entry {position} is still the placeholder; set a real token")
        if len(parts) == 1:
            tokens.append(ApiToken(parts[0].encode()))
            continue
        if len(parts) > 3 or not TOKEN_NAME.match(parts[0]) or not parts[1]:
            raise ConfigError(f"FEEDBACK_API_TOKENS: entry {position} is not 'token', 'name:token' or "
                              "'name:token:source1|source2' (a name of 1-40 letters, digits, '-' or '_')")
        sources = frozenset(s.strip() for s in parts[2].split("|") if s.strip()) if len(parts) == 3 else frozenset()
        if not sources <= SOURCES:
            raise ConfigError(f"FEEDBACK_API_TOKENS: entry {position} ({parts[0]}) names unknown sources "
                              f"{sorted(sources - SOURCES)}; known: {sorted(SOURCES)}")
        tokens.append(ApiToken(parts[1].encode(), parts[0], sources - {"event"}))
    names = [t.name for t in tokens if t.name]
    if len(names) != len(set(names)):
        raise ConfigError("FEEDBACK_API_TOKENS: two tokens have the same name")
    return tokens


_BLANK = re.compile(r"[ \t\n\r]*")


def parse_events(body: bytes, max_records: int, max_record_bytes: int) -> list[Any]:
    """The records of a ``/v1/events`` body (one JSON value, or an array of them), decoded one at a time
    so that the limits hold while parsing: the array is abandoned at record ``max_records + 1`` (413
    ``too_many_records``) or at the first record whose JSON text exceeds ``max_record_bytes`` (413
    ``record_too_large``); malformed or too deeply nested JSON is 400, never 500."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid UTF-8: {exc.reason}") from exc
    decoder = json.JSONDecoder()
    at = _BLANK.match(text).end()  # type: ignore[union-attr]
    if not text.startswith("[", at):
        value, end = _decode(decoder, text, at)
        _only_blank(text, end)
        return [value]
    items: list[Any] = []
    at = _BLANK.match(text, at + 1).end()  # type: ignore[union-attr]
    if text.startswith("]", at):
        _only_blank(text, at + 1)
        return items
    while True:
        if len(items) >= max_records:
            raise ApiError(413, "too_many_records", f"at most {max_records} records per request")
        value, end = _decode(decoder, text, at)
        if end - at > max_record_bytes or len(text[at:end].encode()) > max_record_bytes:
            raise ApiError(413, "record_too_large", f"record {len(items)} exceeds {max_record_bytes} bytes")
        items.append(value)
        at = _BLANK.match(text, end).end()  # type: ignore[union-attr]
        if text.startswith(",", at):
            at = _BLANK.match(text, at + 1).end()  # type: ignore[union-attr]
        elif text.startswith("]", at):
            _only_blank(text, at + 1)
            return items
        else:
            raise ApiError(400, "malformed_json", f"the body is not valid JSON: expected ',' or ']' at {at}")


def _decode(decoder: json.JSONDecoder, text: str, at: int) -> tuple[Any, int]:
    try:
        return decoder.raw_decode(text, at)
    except json.JSONDecodeError as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ApiError(400, "too_deeply_nested", "the JSON is nested too deeply") from exc


def _only_blank(text: str, at: int) -> None:
    if _BLANK.match(text, at).end() != len(text):  # type: ignore[union-attr]
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: extra data at {at}")


def check_event_time(index: int, record: FeedbackRecord) -> FeedbackRecord:
    """``record``, or ApiError 422 ``event_time_in_future`` when it is dated more than
    :data:`MAX_FUTURE_EVENT` after it was received (such a record would move the signal watermark
    forward, make current feedback late and escape the purge): rejected, never clamped."""
    if record.event_time > record.received_at + MAX_FUTURE_EVENT:
        raise ApiError(422, "event_time_in_future",
                       f"record {index}: event_time is more than {MAX_FUTURE_EVENT} after its receipt",
                       [{"index": index, "loc": ["event_time"], "msg": "in the future"}])
    return record


def is_loopback(host: str) -> bool:
    """True when ``host`` is reachable only from this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: assume others can reach it


def check_exposure(host: str, tokens: list[ApiToken], allow_anonymous: bool) -> None:
    """Refuse (ConfigError) to serve ``/v1/events`` to anyone on a non-loopback address without tokens,
    unless anonymous events were allowed explicitly."""
    if tokens or allow_anonymous or is_loopback(host):
        return
    raise ConfigError(
        f"FEEDBACK_API_TOKENS is not set while the HTTP service listens on {host!r}, where other machines "
        "can reach it: /v1/events would accept records from anyone. Set FEEDBACK_API_TOKENS (see "
        "docs/security.md), or FEEDBACK_ALLOW_ANONYMOUS_EVENTS=true to accept anonymous events on purpose.")


def authenticate(authorization: str, tokens: list[ApiToken]) -> ApiToken | None:
    """The token of a ``Bearer`` header (None when no tokens are configured), or ApiError 401.

    Every token is compared (in constant time) so that timing does not reveal which one nearly matched."""
    if not tokens:
        return None
    given = authorization[7:].strip().encode() if authorization.lower().startswith("bearer ") else b""
    matches = [hmac.compare_digest(given, t.secret) for t in tokens]
    if not given or not any(matches):
        raise ApiError(401, "unauthorized", "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    return tokens[matches.index(True)]


def admit_event(index: int, item: dict[str, Any], token: ApiToken | None) -> dict[str, Any]:
    """``item`` as its caller may send it, or ApiError 403/422: ``source`` is ``event`` or one the token
    allows; no ticket-state attribute; no client-chosen ``origin``; a named token's ``source_ref``
    prefixed with its name; ``origin`` set to the caller's."""
    source = item.get("source", "event")
    if source != "event" and (token is None or source not in token.sources):
        raise ApiError(403, "source_not_allowed", f"record {index}: this client may not send source {source!r}"[:300],
                       [{"index": index, "loc": ["source"], "msg": "source not allowed for this token"}])
    if "origin" in item:
        raise ApiError(422, "validation_failed", "a record does not follow the schema",
                       [{"index": index, "loc": ["origin"], "msg": "set by the service, not by a client"}])
    attributes = item.get("attributes")
    if isinstance(attributes, dict):
        state = sorted(k for k in attributes if isinstance(k, str) and (
            k.startswith(TICKET_STATE_PREFIX) or k in TICKET_STATE_KEYS))
        if state:
            raise ApiError(403, "ticket_state_not_allowed", "ticket state comes only from the ticket connectors",
                           [{"index": index, "loc": ["attributes", k], "msg": "not allowed"} for k in state[:10]])
    item = dict(item)
    if token is not None:
        item["origin"] = token.origin
        ref = item.get("source_ref")
        if token.name and isinstance(ref, str):
            item["source_ref"] = f"{token.name}:{ref.strip()}"
    return item


class FormRateLimiter:
    """Per-client moving-window limit on form submissions (in memory, per process)."""

    def __init__(self, rate: str, trust_proxy: bool) -> None:
        self.item = parse(rate) if rate else None
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.trust_proxy = trust_proxy

    def client(self, request: Request) -> str:
        if self.trust_proxy:
            forwarded = request.headers.get("x-forwarded-for", "")
            if forwarded:
                return forwarded.split(",")[0].strip()
        return request.client.host if request.client else "unknown"

    def check(self, request: Request, scope: str) -> None:
        """Raise ApiError 429 (with Retry-After) when the client is over its rate."""
        if self.item is None:
            return
        key = self.client(request)
        if self.limiter.hit(self.item, scope, key):
            return
        reset = self.limiter.get_window_stats(self.item, scope, key).reset_time
        retry = max(1, math.ceil(reset - time.time()))
        raise ApiError(429, "rate_limited", f"too many submissions; retry in {retry}s",
                       headers={"Retry-After": str(retry)})


def content_security_policy(nonce: str, frame_ancestors: list[str]) -> str:
    ancestors = " ".join(frame_ancestors) if frame_ancestors else "'none'"
    return (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; "
        "form-action 'self'; "
        "base-uri 'none'; "
        f"frame-ancestors {ancestors}"
    )


_ALWAYS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"strict-origin-when-cross-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeaders:
    """Pure ASGI middleware (no extra task or stream per request, unlike ``@app.middleware("http")``):
    ``431`` past ``max_header_count`` headers, a fresh CSP nonce in ``request.state.csp_nonce``, and
    the security headers on every response (a header the route set itself is kept)."""

    def __init__(self, app: ASGIApp, max_header_count: int, origins: list[str]) -> None:
        self.app = app
        self.max_header_count = max_header_count
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if len(scope["headers"]) > self.max_header_count:
            metrics.REJECTED.labels("http", "too_many_headers").inc()
            response = JSONResponse(
                error_body("too_many_headers", f"at most {self.max_header_count} headers"), 431
            )
            await response(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(item for item in _ALWAYS if item[0] not in present)
                content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
                if content_type.startswith(b"text/html"):
                    headers = [(k, v) for k, v in headers if k.lower() != b"content-security-policy"]
                    csp = content_security_policy(nonce, self.origins)
                    if scope["path"] == "/docs":  # Swagger UI: its assets from this service, an inline start
                        csp = DOCS_CSP
                    headers.append((b"content-security-policy", csp.encode("latin-1")))
                    if not self.origins and b"x-frame-options" not in present:
                        headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: The policy of the Swagger UI page (connectors.http.operations): nothing from outside this service.
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")


def install(app: FastAPI, settings: HttpSettings) -> None:
    """Add the CORS allow-list and the header middleware to ``app`` (the header middleware outermost)."""
    origins = [o.rstrip("/") for o in settings.cors_origins]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=600,
        )
    app.add_middleware(SecurityHeaders, max_header_count=settings.max_header_count, origins=origins)
