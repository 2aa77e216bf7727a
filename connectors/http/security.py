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
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

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


def install(app: FastAPI, settings: HttpSettings) -> None:
    """Add the CORS allow-list and the header middleware to ``app``."""
    origins = [o.rstrip("/") for o in settings.cors_origins]
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization"],
            max_age=600,
        )

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if len(request.headers.raw) > settings.max_header_count:
            metrics.REJECTED.labels("http", "too_many_headers").inc()
            return JSONResponse(
                error_body("too_many_headers", f"at most {settings.max_header_count} headers"), 431
            )
        request.state.csp_nonce = secrets.token_urlsafe(16)
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if response.headers.get("content-type", "").startswith("text/html"):
            csp = content_security_policy(request.state.csp_nonce, origins)
            if request.url.path in ("/docs", "/redoc"):  # FastAPI's docs pages load their own assets
                csp = "frame-ancestors 'none'"
            response.headers["Content-Security-Policy"] = csp
            if not origins:
                response.headers.setdefault("X-Frame-Options", "DENY")
        return response
