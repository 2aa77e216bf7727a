"""Webhook routes of the HTTP service: ``POST /webhooks/{zendesk,freshdesk,jira,generic}``.

Guarantees: ``202`` only after the broker acknowledged every record of the delivery (the
app's publisher, ``acks=all``); a re-delivery yields the same deterministic ``feedback_id``\\ s, so
no new row; anything refused gets the service's JSON error body and a count in
``feedback_rejected_total{source="<system>_webhook", reason}``: 401 (missing/bad signature or token,
stale timestamp), 400 (malformed JSON), 413 (oversize), 415 (not JSON), 422 (unknown event, invalid
payload), 503 (route not configured, broker unavailable). Internal notes and agent replies are
answered 202, skipped and counted under the same metric.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import SecretStr, ValidationError

from connectors.http.app import read_limited
from connectors.http.errors import ApiError, error_body, is_json, media_type
from connectors.tickets import auth, freshdesk, generic, jira, zendesk
from connectors.tickets.model import Mapped, RecordFactory
from pipeline import metrics
from pipeline.config import HttpSettings
from pipeline.errors import RecordError
from pipeline.logging import get_logger

log = get_logger(__name__)

Mapper = Callable[[Any, RecordFactory], Mapped]
Verifier = Callable[[Request, bytes, list[bytes]], None]

RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "accepted after the broker's ack"}, 400: {}, 401: {}, 413: {}, 415: {}, 422: {}, 503: {}}


def create_router(settings: HttpSettings, *, verify: bool = True) -> APIRouter:
    """The webhook routes; ``verify=False`` skips authenticity checks (benchmark baselines only)."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    customer_key = settings.customer_key()
    tolerance = settings.webhook_tolerance_seconds

    def secret(value: SecretStr | None) -> list[bytes]:
        """The comma-separated secrets of a setting (several: one per sender, or during a rotation)."""
        text = value.get_secret_value() if value is not None else ""
        return [part.strip().encode() for part in text.split(",") if part.strip()]

    def zendesk_check(request: Request, body: bytes, keys: list[bytes]) -> None:
        auth.check_zendesk(request.headers, body, keys, tolerance)

    def generic_check(request: Request, body: bytes, keys: list[bytes]) -> None:
        auth.check_generic(request.headers, body, keys, tolerance)

    def freshdesk_check(request: Request, body: bytes, keys: list[bytes]) -> None:
        auth.check_token(request.headers, request.query_params, body, keys)

    def jira_check(request: Request, body: bytes, keys: list[bytes]) -> None:
        auth.check_token(request.headers, request.query_params, body, keys, hub=True)

    routes: dict[str, tuple[Mapper, Verifier, list[bytes], str]] = {
        "zendesk": (zendesk.map_webhook, zendesk_check, secret(settings.zendesk_webhook_secret),
                    "FEEDBACK_ZENDESK_WEBHOOK_SECRET"),
        "freshdesk": (freshdesk.map_webhook, freshdesk_check, secret(settings.freshdesk_webhook_token),
                      "FEEDBACK_FRESHDESK_WEBHOOK_TOKEN"),
        "jira": (jira.map_webhook, jira_check, secret(settings.jira_webhook_token), "FEEDBACK_JIRA_WEBHOOK_TOKEN"),
        "generic": (generic.map_webhook, generic_check, secret(settings.generic_webhook_secret),
                    "FEEDBACK_GENERIC_WEBHOOK_SECRET"),
    }

    def reject(source: str, exc: ApiError) -> JSONResponse:
        metrics.REJECTED.labels(source, exc.error).inc()
        return JSONResponse(error_body(exc.error, exc.message, exc.details), status_code=exc.status,
                            headers=exc.headers)

    async def handle(request: Request, system: str) -> JSONResponse:
        mapper, verifier, keys, variable = routes[system]
        source = f"{system}_webhook"
        metrics.RECEIVED.labels(source).inc()
        try:
            if verify and not keys:
                raise ApiError(503, "webhook_not_configured", f"this webhook is disabled: set {variable}",
                               headers={"Retry-After": "300"})
            body = await read_limited(request, settings.webhook_max_body_bytes)
            if verify:
                verifier(request, body, keys)
            if not is_json(media_type(request)):
                raise ApiError(415, "unsupported_media_type", "send application/json")
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
            try:
                mapped = mapper(payload, RecordFactory(customer_key))
            except RecordError as exc:
                raise ApiError(422, exc.reason, exc.detail or exc.reason) from exc
            except ValidationError as exc:  # a value the record contract refuses (e.g. a bad rating)
                details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
                           for e in exc.errors(include_url=False, include_input=False)]
                raise ApiError(422, "validation_failed", "the payload maps to an invalid record", details) from exc
            await publish(request, mapped, system, source)
        except ApiError as exc:
            if exc.status >= 500 or exc.status == 401:
                log.warning("webhook refused", system=system, status=exc.status, reason=exc.error)
            return reject(source, exc)
        return JSONResponse({"accepted": len(mapped.records),
                             "feedback_ids": [str(r.feedback_id) for r in mapped.records],
                             "skipped": mapped.skipped}, status_code=202)

    async def publish(request: Request, mapped: Mapped, system: str, source: str) -> None:
        if mapped.records:
            # the app's publish: broker ack (acks=all) or ApiError 503 broker_unavailable with Retry-After;
            # a failure also re-provisions the topics (a restarted embedded broker comes back empty)
            await request.app.state.publish(mapped.records, source)
        for record in mapped.records:
            metrics.TICKET_ITEMS.labels(system, "state" if record.is_ticket_state else "feedback").inc()
        for reason in mapped.skipped:
            metrics.TICKET_ITEMS.labels(system, f"skipped_{reason}").inc()
            metrics.REJECTED.labels(source, reason).inc()

    @router.post("/zendesk", status_code=202, responses=RESPONSES)
    async def zendesk_webhook(request: Request) -> JSONResponse:
        """Zendesk webhook (event subscriptions for tickets; trigger body for satisfaction ratings)."""
        return await handle(request, "zendesk")

    @router.post("/freshdesk", status_code=202, responses=RESPONSES)
    async def freshdesk_webhook(request: Request) -> JSONResponse:
        """Freshdesk automation-rule webhook (simple or advanced JSON)."""
        return await handle(request, "freshdesk")

    @router.post("/jira", status_code=202, responses=RESPONSES)
    async def jira_webhook(request: Request) -> JSONResponse:
        """Jira Service Management / Jira Cloud webhook."""
        return await handle(request, "jira")

    @router.post("/generic", status_code=202, responses=RESPONSES)
    async def generic_webhook(request: Request) -> JSONResponse:
        """Any other ticket system, in the documented generic format, HMAC-signed."""
        return await handle(request, "generic")

    return router
