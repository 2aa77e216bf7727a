"""Protections of the public HTTP surface: rate limits, CORS allow-list, security headers, header limits.

Guarantees: a client over its form rate gets ``429`` with ``Retry-After``; a request with too many
headers gets ``431``; every response carries ``nosniff``/referrer/permissions headers and HTML pages
a strict Content-Security-Policy whose only inline style is the nonce'd one of our templates;
cross-origin browser calls are allowed only from ``FEEDBACK_CORS_ORIGINS``.
"""

from __future__ import annotations

import math
import secrets
import time

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
                    if scope["path"] in ("/docs", "/redoc"):  # FastAPI's docs pages load their own assets
                        csp = "frame-ancestors 'none'"
                    headers.append((b"content-security-policy", csp.encode("latin-1")))
                    if not self.origins and b"x-frame-options" not in present:
                        headers.append((b"x-frame-options", b"DENY"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


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
