"""The HTTP service's webhook routes: ``POST /webhooks/<name>`` for every registered webhook source.

The sources come from the ``feedback.webhooks`` entry points (:mod:`pipeline.webhooks`); nothing
here names one. Guarantees: ``202`` only after the broker acknowledged every record of the delivery
(the app's publish, ``acks=all``); a re-delivery yields the same deterministic ``feedback_id``\\ s, so
no new row; anything refused gets the service's JSON error body and a count in
``feedback_rejected_total{source="<name>_webhook", reason}``: 404 (webhook not configured), 401
(signature or token), 400 (malformed JSON), 413 (oversize), 415 (not JSON), 422 (unknown event,
invalid payload), 503 (broker unavailable). Skipped items (internal notes, answers without text)
are answered 202 and counted under the same metric.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from connectors.http.errors import ApiError, error_body, is_json, media_type
from pipeline import metrics
from pipeline.config import HttpSettings
from pipeline.errors import RecordError
from pipeline.logging import get_logger
from pipeline.webhooks import Mapped, WebhookRejected, WebhookSource, registered_names, webhook_sources

log = get_logger(__name__)

ReadBody = Callable[[Request, int], Awaitable[bytes]]

RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": "accepted after the broker's ack"}, 400: {}, 401: {}, 404: {}, 413: {}, 415: {}, 422: {},
    503: {}}


def webhook_paths() -> frozenset[str]:
    """The paths of the registered webhook routes."""
    return frozenset(f"/webhooks/{name}" for name in registered_names())


def create_router(settings: HttpSettings, read_body: ReadBody, *, verify: bool = True,
                  sources: dict[str, WebhookSource] | None = None) -> APIRouter:
    """The webhook routes; ``verify=False`` skips authenticity checks (benchmark baselines only)."""
    router = APIRouter(prefix="/webhooks", tags=["webhooks"])
    for name, source in (webhook_sources(settings) if sources is None else sources).items():
        router.add_api_route(f"/{name}", _endpoint(settings, source, read_body, verify), methods=["POST"],
                             status_code=202, responses=RESPONSES, name=f"{name}_webhook",
                             summary=f"{name} webhook", description=(source.__doc__ or "").strip())
    return router


def _endpoint(settings: HttpSettings, source: WebhookSource, read_body: ReadBody,
              verify: bool) -> Callable[[Request], Awaitable[JSONResponse]]:
    label = f"{source.name}_webhook"

    async def endpoint(request: Request) -> JSONResponse:
        metrics.RECEIVED.labels(label).inc()
        try:
            mapped = await _accept(request, settings, source, read_body, verify)
            if mapped.records:
                # the app's publish: broker ack (acks=all) or ApiError 503 broker_unavailable with Retry-After
                await request.app.state.publish(mapped.records, label)
        except ApiError as exc:
            if exc.status >= 500 or exc.status == 401:
                log.warning("webhook refused", system=source.name, status=exc.status, reason=exc.error)
            metrics.REJECTED.labels(label, exc.error).inc()
            return JSONResponse(error_body(exc.error, exc.message, exc.details), status_code=exc.status,
                                headers=exc.headers)
        _count(source, label, mapped)
        return JSONResponse({"accepted": len(mapped.records),
                             "feedback_ids": [str(r.feedback_id) for r in mapped.records],
                             "skipped": mapped.skipped}, status_code=202)

    return endpoint


async def _accept(request: Request, settings: HttpSettings, source: WebhookSource, read_body: ReadBody,
                  verify: bool) -> Mapped:
    """Read, verify, parse and map one delivery; every refusal is an ApiError."""
    if verify and not source.configured():
        raise ApiError(404, "webhook_not_configured", f"this webhook is not configured: set {source.setting}")
    body = await read_body(request, settings.webhook_max_body_bytes)
    if verify:
        try:
            source.verify(request.headers, body, request.query_params)
        except WebhookRejected as exc:
            raise ApiError(exc.status, exc.error, exc.message) from exc
    if not is_json(media_type(request)):
        raise ApiError(415, "unsupported_media_type", "send application/json")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
    try:
        return source.map(payload)
    except RecordError as exc:
        raise ApiError(422, exc.reason, exc.detail or exc.reason) from exc
    except ValidationError as exc:  # a value the record contract refuses (e.g. a bad rating)
        details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]}
                   for e in exc.errors(include_url=False, include_input=False)]
        raise ApiError(422, "validation_failed", "the payload maps to an invalid record", details) from exc


def _count(source: WebhookSource, label: str, mapped: Mapped) -> None:
    tickets = getattr(source, "ticket_system", False)  # feedback_ticket_items_total is the ticket systems' own
    for record in mapped.records if tickets else ():
        metrics.TICKET_ITEMS.labels(source.name, "state" if record.is_ticket_state else "feedback").inc()
    for reason in mapped.skipped:
        if tickets:
            metrics.TICKET_ITEMS.labels(source.name, f"skipped_{reason}").inc()
        metrics.REJECTED.labels(label, reason).inc()
