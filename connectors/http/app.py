"""The HTTP ingestion service: feedback forms, ``/v1/events``, health and metrics.

Guarantees: ``202`` (or the thank-you page) only after the broker acknowledged every record;
bad input gets a 4xx with a JSON body ``{"error", "message", "details"}`` and a counter; the
service never answers 500 for anything a client sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.routing import Route

from connectors.http import security
from connectors.http.contact import ContactSealer
from connectors.http.errors import ApiError, error_body, is_json, media_type
from connectors.http.form_texts import FormTexts
from connectors.http.forms import (
    FormPages,
    FormSubmission,
    field_errors,
    form_record,
    kept_values,
    parse_form_body,
)
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

FORM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


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


def _validation_details(exc: ValidationError, index: int | None = None) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        item: dict[str, Any] = {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        if index is not None:
            item["index"] = index
        out.append(item)
    return out


def create_app(settings: HttpSettings, publisher: Publisher | AsyncPublisher | None = None) -> FastAPI:
    """The ASGI app; ``publisher`` is created at start-up unless one is given (tests, bench).

    Its own publisher is an :class:`~pipeline.async_publisher.AsyncPublisher` (aiokafka on the
    service's event loop); a given one may also be a kafka-python :class:`Publisher`: the routes
    only need ``publish_async`` and ``ready_async``.
    """
    customer_key = settings.customer_key()
    tokens = security.parse_api_tokens([t.get_secret_value() for t in settings.api_tokens])
    security.check_exposure(settings.http_host, tokens, settings.allow_anonymous_events)
    form_limiter = security.FormRateLimiter(settings.form_rate_limit, settings.trust_proxy)
    sealer = ContactSealer(settings.contact_key)  # both ConfigError at start-up when invalid
    pages = FormPages(templates, FormTexts.load(settings.forms_file), consent=sealer.enabled)
    state: dict[str, Publisher | AsyncPublisher] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        own: AsyncPublisher | None = None
        if publisher is None:
            await asyncio.to_thread(ensure_topics, settings)
            own = AsyncPublisher(settings, client_id="feedback-http")
            await own.start()
        state["publisher"] = publisher or own  # type: ignore[assignment]
        _app.state.publisher = state["publisher"]
        log.info("http service ready", host=settings.http_host, port=settings.http_port)
        try:
            yield
        finally:
            if own is not None:
                await own.close()

    app = FastAPI(
        title="Feedback pipeline ingestion API",
        version="1",
        description="Feedback forms and the event API of the customer-feedback pipeline.",
        lifespan=lifespan,
    )

    security.install(app, settings)

    def reject(source: str, exc: ApiError) -> JSONResponse:
        metrics.REJECTED.labels(source, exc.error).inc()
        return JSONResponse(error_body(exc.error, exc.message, exc.details), status_code=exc.status,
                            headers=exc.headers)

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

    provisioning: dict[str, Any] = {"task": None, "last": 0.0, "running": False}

    def reprovision() -> None:
        """After a failed publish, re-create missing topics in the background (a broker restarted
        with memory storage comes back empty); at most one attempt every 5 seconds."""
        worker = provisioning["task"]
        if (worker is not None and worker.is_alive()) or time.monotonic() - provisioning["last"] < 5:
            return
        provisioning["last"] = time.monotonic()

        def attempt() -> None:
            try:
                ensure_topics(settings, 5.0)
            except TransientError as exc:
                log.warning("topic provisioning failed", error=str(exc))
            finally:
                provisioning["running"] = False

        # a daemon thread: a broker that never answers must not hold up the service's shutdown
        provisioning["running"] = True
        provisioning["task"] = threading.Thread(target=attempt, name="reprovision-topics", daemon=True)
        provisioning["task"].start()

    async def publish(records: list[FeedbackRecord], source: str) -> None:
        """Publish and count ``records``, or raise ApiError 503 (``broker_unavailable``, Retry-After)."""
        if provisioning["running"]:
            # No record goes out while the topics are being re-created: the embedded broker can lose
            # what is written to a topic that is created (auto-created by a metadata request) between
            # ensure_topics' listing and its CreateTopics. The client retries after a second.
            raise ApiError(503, "broker_unavailable", "the broker is being re-provisioned; retry later",
                           headers={"Retry-After": "1"})
        try:
            await state["publisher"].publish_async(records, timeout=settings.publish_timeout_seconds)
        except TransientError as exc:
            log.warning("publish failed", error=str(exc), records=len(records))
            reprovision()
            raise ApiError(503, "broker_unavailable", "the feedback could not be stored; retry later",
                           headers={"Retry-After": str(int(exc.retry_after or 2))}) from exc
        metrics.ACCEPTED.labels(source).inc(len(records))

    app.state.publish = publish  # the webhook routes (connectors.http.webhooks) publish through it too

    # -- health and metrics -------------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"], responses={503: {"description": "broker not reachable"}})
    async def readyz() -> JSONResponse:
        """Readiness: the producer is connected to the broker."""
        pub = state.get("publisher")
        try:
            async with asyncio.timeout(5):
                ok = pub is not None and await pub.ready_async()
        except TimeoutError:
            ok = False
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse(error_body("not_ready", "the broker is not reachable"), status_code=503)

    @app.get("/metrics", tags=["operations"], response_class=Response)
    async def metrics_endpoint() -> Response:
        """Prometheus metrics of this process."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # -- forms ------------------------------------------------------------------------------------
    def check_form_id(form_id: str) -> None:
        if not FORM_ID.match(form_id):
            raise ApiError(404, "unknown_form", "no such form")

    @app.get("/forms/{form_id}", response_class=HTMLResponse, tags=["forms"])
    async def form_page(request: Request, form_id: str) -> HTMLResponse:
        """The HTML feedback form in the form's language (score first; CSAT, comment, e-mail, consent optional)."""
        check_form_id(form_id)
        return pages.form(request, form_id)

    @app.post(
        "/forms/{form_id}", tags=["forms"], status_code=202,
        openapi_extra={"requestBody": {"content": {
            "application/x-www-form-urlencoded": {"schema": FormSubmission.model_json_schema()},
            "multipart/form-data": {"schema": FormSubmission.model_json_schema()},
            "application/json": {"schema": FormSubmission.model_json_schema()},
        }, "required": True}},
        responses={400: {}, 408: {}, 413: {}, 415: {}, 422: {}, 429: {}, 503: {}},
    )
    async def submit_form(request: Request, form_id: str) -> Response:
        """Accept a form submission (a score, a comment, or both). A browser gets the thank-you page, or the
        form again with its answers kept and a message (also for 408, 413, 429 and 503); an API client JSON."""
        check_form_id(form_id)
        metrics.RECEIVED.labels("webform").inc()
        media = media_type(request)
        browser = not is_json(media) and "text/html" in request.headers.get("accept", "")
        fields: dict[str, Any] | None = None

        async def read_fields() -> dict[str, Any]:
            body = await read_limited(request, settings.max_record_bytes, settings.body_timeout_seconds)
            return await parse_form_body(request, media, body)

        try:
            try:
                form_limiter.check(request, f"form:{form_id}")
            except ApiError:
                if browser:  # the 429 page keeps the answers: read them (bounded) before refusing
                    with contextlib.suppress(ApiError):
                        fields = await read_fields()
                raise
            fields = await read_fields()
            submission = FormSubmission.model_validate(fields)
            record = form_record(form_id, submission, customer_key, sealer, pages.texts.language(form_id))
            if not submission.website:  # honeypot: bots fill hidden fields; answered as if accepted
                await publish([record], "webform")
        except ValidationError as exc:
            if browser:
                metrics.REJECTED.labels("webform", "validation_failed").inc()
                errors = field_errors(exc, pages.texts.texts(form_id))
                return pages.form(request, form_id, kept_values(fields or {}), errors, status=422)
            return reject("webform", ApiError(422, "validation_failed", "the form has invalid fields",
                                              _validation_details(exc)))
        except ApiError as exc:
            if browser:
                metrics.REJECTED.labels("webform", exc.error).inc()
                return pages.error(request, form_id, exc, fields)
            return reject("webform", exc)
        if submission.website:
            metrics.REJECTED.labels("webform", "honeypot").inc()
            return _form_answer(request, browser, form_id, [], False)
        return _form_answer(request, browser, form_id, [str(record.feedback_id)], submission.consent)

    def _form_answer(request: Request, browser: bool, form_id: str, ids: list[str], consent: bool) -> Response:
        if browser:
            return pages.thanks(request, form_id, consent)
        return JSONResponse({"accepted": len(ids), "feedback_ids": ids}, status_code=202)

    # -- events API -------------------------------------------------------------------------------
    @app.post(
        "/v1/events", tags=["events"], status_code=202,
        openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
            "oneOf": [{"$ref": "#/components/schemas/FeedbackRecord"},
                      {"type": "array", "items": {"$ref": "#/components/schemas/FeedbackRecord"},
                       "maxItems": settings.max_records_per_request}]}}}, "required": True}},
        responses={400: {}, 401: {}, 408: {}, 413: {}, 415: {}, 422: {}, 503: {}},
    )
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

    webhooks = create_webhook_router(settings, read_limited)  # every registered feedback.webhooks source
    app.include_router(webhooks)
    _serve_directly(app, [*app.router.routes, *webhooks.routes], HOT_PATHS)
    app.openapi_schema = None
    _add_record_schema(app)
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
                       _validation_details(exc, index)) from exc
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
