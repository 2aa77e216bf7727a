"""The feedback form's routes: ``GET /forms/{id}`` (the page) and ``POST /forms/{id}`` (a submission).

Guarantees: a browser always gets HTML (the thank-you page, or the form again with every answer kept
and a message next to the field, also for 408, 413, 429 and 503); an API client gets JSON (``202`` with
the id, or a 4xx with ``{"error", "message", "details"}``); a record is published only after the
submission validated, and answered only after the broker acknowledged it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError

from connectors.http import security
from connectors.http.contact import ContactSealer
from connectors.http.errors import ApiError, error_body, is_json, media_type
from connectors.http.forms import FormPages, FormSubmission, field_errors, form_record, kept_values, parse_form_body
from pipeline import metrics
from pipeline.config import HttpSettings
from pipeline.schema import FeedbackRecord

FORM_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FORM_BODY = {"requestBody": {"content": {
    "application/x-www-form-urlencoded": {"schema": FormSubmission.model_json_schema()},
    "multipart/form-data": {"schema": FormSubmission.model_json_schema()},
    "application/json": {"schema": FormSubmission.model_json_schema()},
}, "required": True}}

Publish = Callable[[list[FeedbackRecord], str], Awaitable[None]]
ReadLimited = Callable[[Request, int, float], Awaitable[bytes]]


def reject(source: str, exc: ApiError) -> JSONResponse:
    """The JSON answer to a refused request, counted under ``source`` and the error's code."""
    metrics.REJECTED.labels(source, exc.error).inc()
    return JSONResponse(error_body(exc.error, exc.message, exc.details), status_code=exc.status, headers=exc.headers)


def validation_details(exc: ValidationError, index: int | None = None) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        item: dict[str, Any] = {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
        if index is not None:
            item["index"] = index
        out.append(item)
    return out


def check_form_id(form_id: str) -> None:
    if not FORM_ID.match(form_id):
        raise ApiError(404, "unknown_form", "no such form")


@dataclass
class FormService:
    """What the form routes need: settings, pages, the customer key, the sealer, the limiter, publishing."""

    settings: HttpSettings
    pages: FormPages
    customer_key: bytes
    sealer: ContactSealer
    limiter: security.FormRateLimiter
    publish: Publish
    read_limited: ReadLimited

    async def read_fields(self, request: Request, media: str) -> dict[str, Any]:
        body = await self.read_limited(request, self.settings.max_record_bytes, self.settings.body_timeout_seconds)
        return await parse_form_body(request, media, body)

    async def accept(self, request: Request, form_id: str, browser: bool) -> tuple[dict[str, Any], Any]:
        """Read, validate and publish one submission: ``(fields, submission)``; raises ApiError or
        ValidationError with ``fields`` kept on ``request.state`` for the page that answers it."""
        media = media_type(request)
        try:
            self.limiter.check(request, f"form:{form_id}")
        except ApiError:
            if browser:  # the 429 page keeps the answers: read them (bounded) before refusing
                with contextlib.suppress(ApiError):
                    request.state.fields = await self.read_fields(request, media)
            raise
        request.state.fields = fields = await self.read_fields(request, media)
        submission = FormSubmission.model_validate(fields)
        record = form_record(form_id, submission, self.customer_key, self.sealer, self.pages.texts.language(form_id))
        if not submission.website:  # honeypot: bots fill hidden fields; answered as if accepted
            await self.publish([record], "webform")
        return fields, (submission, record)

    def answer(self, request: Request, browser: bool, form_id: str, ids: list[str], consent: bool) -> Response:
        if browser:
            return self.pages.thanks(request, form_id, consent)
        return JSONResponse({"accepted": len(ids), "feedback_ids": ids}, status_code=202)


def form_router(service: FormService) -> APIRouter:
    """The two form routes on ``service``."""
    router = APIRouter(tags=["forms"])
    pages = service.pages

    @router.get("/forms/{form_id}", response_class=HTMLResponse)
    async def form_page(request: Request, form_id: str) -> HTMLResponse:
        """The HTML feedback form in the form's language (score first; CSAT, comment, e-mail, consent optional)."""
        check_form_id(form_id)
        return pages.form(request, form_id)

    @router.post("/forms/{form_id}", status_code=202, openapi_extra=FORM_BODY,
                 responses={400: {}, 408: {}, 413: {}, 415: {}, 422: {}, 429: {}, 503: {}})
    async def submit_form(request: Request, form_id: str) -> Response:
        """Accept a form submission (a score, a comment, or both). A browser gets the thank-you page, or the
        form again with its answers kept and a message (also for 408, 413, 429 and 503); an API client JSON."""
        check_form_id(form_id)
        metrics.RECEIVED.labels("webform").inc()
        browser = not is_json(media_type(request)) and "text/html" in request.headers.get("accept", "")
        try:
            _fields, (submission, record) = await service.accept(request, form_id, browser)
        except ValidationError as exc:
            if browser:
                metrics.REJECTED.labels("webform", "validation_failed").inc()
                errors = field_errors(exc, pages.texts.texts(form_id))
                fields = getattr(request.state, "fields", None) or {}
                return pages.form(request, form_id, kept_values(fields), errors, status=422)
            return reject("webform", ApiError(422, "validation_failed", "the form has invalid fields",
                                              validation_details(exc)))
        except ApiError as exc:
            if browser:
                metrics.REJECTED.labels("webform", exc.error).inc()
                return pages.error(request, form_id, exc, getattr(request.state, "fields", None))
            return reject("webform", exc)
        if submission.website:
            metrics.REJECTED.labels("webform", "honeypot").inc()
            return service.answer(request, browser, form_id, [], False)
        return service.answer(request, browser, form_id, [str(record.feedback_id)], submission.consent)

    return router
