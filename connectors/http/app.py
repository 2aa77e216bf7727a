"""The HTTP ingestion service: feedback forms (connectors.http.form_routes), ``/v1/events``, webhooks,
health, metrics and docs (connectors.http.operations).

Guarantees: ``202`` (or the thank-you page) only after the broker acknowledged every record;
bad input gets a 4xx with a JSON body ``{"error", "message", "details"}`` and a counter; the
service never answers 500 for anything a client sent.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from connectors.http import security
from connectors.http.contact import ContactSealer
from connectors.http.errors import ApiError, error_body, is_json, media_type
from connectors.http.form_routes import FormService, Publish, form_router, reject, validation_details
from connectors.http.form_texts import FormTexts
from connectors.http.forms import FormPages
from connectors.http.operations import TITLE, add_docs, create_internal_app, operations_router
from connectors.http.webhooks import create_router as create_webhook_router
from connectors.http.webhooks import webhook_paths
from pipeline import metrics
from pipeline.async_publisher import AsyncPublisher
from pipeline.config import HttpSettings
from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.publisher import Publisher
from pipeline.schema import FeedbackRecord, utcnow
from pipeline.topics import ensure_topics

log = get_logger(__name__)
templates = Jinja2Templates(directory=str(Path(__file__).with_name("templates")))


async def read_limited(request: Request, limit: int, timeout: float = 30.0) -> bytes:
    """The request body, refused with 413 as soon as it exceeds ``limit`` bytes, 408 if it trickles in
    slower than ``timeout`` seconds for the whole body (slow-loris)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise ApiError(400, "bad_content_length", "Content-Length is not a number")
        if int(declared) > limit:
            raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0

    async def consume() -> None:
        nonlocal size
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "payload_too_large", f"the body exceeds {limit} bytes")
            chunks.append(chunk)

    try:
        async with asyncio.timeout(timeout):  # no extra task per request, unlike asyncio.wait_for
            await consume()
    except TimeoutError as exc:
        raise ApiError(408, "request_timeout", f"the body did not arrive within {timeout:g}s") from exc
    except ClientDisconnect as exc:  # nobody is left to answer; counted like any other rejection
        raise ApiError(400, "client_disconnected", "the client went away before sending its body") from exc
    body = b"".join(chunks)
    request._body = body  # let Starlette's form parser reuse what was read
    return body


class Publishing:
    """Publishes accepted records and counts them; a failed publish is a 503 with ``Retry-After``.

    A broker that restarts empty (the embedded one) is not handled here: ``feedback up`` closes the
    broker gate, restarts the broker, provisions the topics and opens the gate again (pipeline.gate)."""

    def __init__(self, settings: HttpSettings, state: dict[str, Any]) -> None:
        self.settings, self.state = settings, state

    async def publish(self, records: list[FeedbackRecord], source: str) -> None:
        """Publish and count ``records``, or raise ApiError 503 (``broker_unavailable``, Retry-After)."""
        try:
            await self.state["publisher"].publish_async(records, timeout=self.settings.publish_timeout_seconds)
        except TransientError as exc:
            log.warning("publish failed", error=str(exc), records=len(records))
            raise ApiError(503, "broker_unavailable", "the feedback could not be stored; retry later",
                           headers={"Retry-After": str(int(exc.retry_after or 2))}) from exc
        metrics.ACCEPTED.labels(source).inc(len(records))


def _lifespan(settings: HttpSettings, publisher: Publisher | AsyncPublisher | None,
              state: dict[str, Any]) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: its own AsyncPublisher (topics ensured first) unless ``publisher`` is given."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own: AsyncPublisher | None = None
        if publisher is None:
            await asyncio.to_thread(ensure_topics, settings)
            own = AsyncPublisher(settings, client_id="feedback-http")
            await own.start()
        state["publisher"] = publisher or own
        app.state.publisher = state["publisher"]
        log.info("http service ready", host=settings.http_host, port=settings.http_port,
                 internal_port=settings.http_internal_port)
        try:
            yield
        finally:
            if own is not None:
                await own.close()

    return lifespan


def _install_error_handlers(app: FastAPI) -> None:
    """JSON bodies for every error a client can cause, counted (never a 500 for a client's input)."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return reject("http", exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"loc": [str(p) for p in e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        metrics.REJECTED.labels("http", "invalid_request").inc()
        return JSONResponse(error_body("invalid_request", "the request is not valid", details), 422)


def _events_router(settings: HttpSettings, tokens: Any, publish: Publish) -> APIRouter:
    """``POST /v1/events``: one record or an array, validated against the published schema."""
    router = APIRouter(tags=["events"])
    body_schema = {"oneOf": [{"$ref": "#/components/schemas/FeedbackRecord"},
                             {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackRecord"},
                              "maxItems": settings.max_records_per_request}]}

    @router.post("/v1/events", status_code=202,
                 openapi_extra={"requestBody": {"content": {"application/json": {"schema": body_schema}},
                                                "required": True}},
                 responses={400: {}, 401: {}, 408: {}, 413: {}, 415: {}, 422: {}, 503: {}})
    async def events(request: Request) -> JSONResponse:
        """One feedback record or an array of them, validated against the published schema."""
        metrics.RECEIVED.labels("event").inc()
        try:
            token = security.authenticate(request.headers.get("authorization", ""), tokens)
            if not is_json(media_type(request)):
                raise ApiError(415, "unsupported_media_type", "send application/json")
            body = await read_limited(request, settings.max_body_bytes, settings.body_timeout_seconds)
            # decoded record by record: the count and size limits hold while parsing, not after
            items = security.parse_events(body, settings.max_records_per_request, settings.max_record_bytes)
            if not items:
                raise ApiError(422, "empty_batch", "the array holds no records")
            records = [validate_event(i, item, settings.max_record_bytes, token) for i, item in enumerate(items)]
            await publish(records, "event")
        except ApiError as exc:
            return reject("event", exc)
        return JSONResponse({"accepted": len(records), "feedback_ids": [str(r.feedback_id) for r in records]},
                            status_code=202)

    return router


def create_app(settings: HttpSettings, publisher: Publisher | AsyncPublisher | None = None) -> FastAPI:
    """The public ASGI app; ``publisher`` is created at start-up unless one is given (tests, bench).

    Its own publisher is an :class:`~pipeline.async_publisher.AsyncPublisher` (aiokafka on the
    service's event loop); a given one may also be a kafka-python :class:`Publisher`: the routes
    only need ``publish_async`` and ``ready_async``. With ``FEEDBACK_HTTP_INTERNAL_PORT`` the app
    serves no ``/metrics``, ``/docs`` or ``/openapi.json``: :func:`create_internal_app`
    (``app.state.internal``) does, on the internal port.
    """
    tokens = security.parse_api_tokens([t.get_secret_value() for t in settings.api_tokens])
    security.check_exposure(settings.http_host, tokens, settings.allow_anonymous_events)
    sealer = ContactSealer(settings.contact_key)  # both ConfigError at start-up when invalid
    pages = FormPages(templates, FormTexts.load(settings.forms_file), consent=sealer.enabled)
    state: dict[str, Any] = {}
    publishing = Publishing(settings, state)
    separate = settings.http_internal_port is not None
    app = FastAPI(title=TITLE, version="1", lifespan=_lifespan(settings, publisher, state),
                  description="Feedback forms and the event API of the customer-feedback pipeline.",
                  docs_url=None, redoc_url=None, openapi_url=None if separate else "/openapi.json")
    security.install(app, settings)
    _install_error_handlers(app)
    app.state.publish = publishing.publish  # the webhook routes (connectors.http.webhooks) publish through it too
    app.include_router(operations_router(state, with_metrics=not separate))
    forms = FormService(settings, pages, settings.customer_key(), sealer,
                        security.FormRateLimiter(settings.form_rate_limit, settings.trust_proxy),
                        publishing.publish, read_limited)
    app.include_router(form_router(forms))
    events = _events_router(settings, tokens, publishing.publish)
    app.include_router(events)
    webhooks = create_webhook_router(settings, read_limited)  # every registered feedback.webhooks source
    app.include_router(webhooks)
    _serve_directly(app, [*events.routes, *webhooks.routes], HOT_PATHS)
    app.openapi_schema = None
    _add_record_schema(app)
    if separate:
        app.state.internal = create_internal_app(app.openapi, state, settings)
    elif settings.http_docs:
        add_docs(app, "/openapi.json")
    return app


#: The high-volume POST routes: served by plain Starlette routes (see :func:`_serve_directly`).
HOT_PATHS = frozenset({"/v1/events", *webhook_paths()})


def _serve_directly(app: FastAPI, routes: list[Any], paths: frozenset[str]) -> None:
    """Put a plain Starlette route in front of each FastAPI route in ``paths`` with the same endpoint.

    Those endpoints take only the ``Request`` and build their own responses, so FastAPI's per-request
    work (route lookup through included routers, dependency solving, parameter and response handling:
    ~0.1 ms of CPU a request in-process, a quarter of the service's cost per delivery) buys nothing
    there. The FastAPI routes stay registered behind them, unreachable for POST, so the OpenAPI
    document still describes them; the app's middleware and exception handlers apply to both alike.
    """
    direct = []
    for route in routes:
        if isinstance(route, APIRoute) and route.path in paths:
            if list(inspect.signature(route.endpoint).parameters) != ["request"]:
                raise TypeError(f"{route.path}: a directly served endpoint takes only the request")
            direct.append(Route(route.path, route.endpoint, methods=sorted(route.methods or ()),
                                name=f"{route.name}_direct", include_in_schema=False))
    if {r.path for r in direct} != paths:
        raise RuntimeError(f"not served directly: {sorted(paths - {r.path for r in direct})}")
    app.router.routes[:0] = direct


def validate_event(index: int, item: Any, max_bytes: int, token: security.ApiToken | None = None) -> FeedbackRecord:
    """One ``/v1/events`` record as ``token``'s caller may send it (see :func:`security.admit_event`)."""
    if not isinstance(item, dict):
        raise ApiError(422, "validation_failed", "each record must be a JSON object",
                       [{"index": index, "loc": [], "msg": "not an object"}])
    if len(json.dumps(item, ensure_ascii=False).encode()) > max_bytes:
        raise ApiError(413, "record_too_large", f"record {index} exceeds {max_bytes} bytes")
    item = {**security.admit_event(index, item, token), "received_at": utcnow()}
    try:
        record = FeedbackRecord.model_validate(item)
    except ValidationError as exc:
        raise ApiError(422, "validation_failed", "a record does not follow the schema",
                       validation_details(exc, index)) from exc
    return security.check_event_time(index, record)


def _add_record_schema(app: FastAPI) -> None:
    """Publish FeedbackRecord under components/schemas so /v1/events can reference it."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        record = FeedbackRecord.model_json_schema(ref_template="#/components/schemas/{model}")
        defs = record.pop("$defs", {})
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.update(defs)
        comps["FeedbackRecord"] = record
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
