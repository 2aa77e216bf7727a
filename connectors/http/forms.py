"""The feedback form: its fields, the parsing of its three encodings (urlencoded, multipart, JSON),
plain-language messages per field, and the HTML pages a browser gets (form, thank-you, errors)."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator, model_validator

from connectors.http.contact import ContactSealer
from connectors.http.errors import ApiError, is_json
from connectors.http.form_texts import FormTexts
from pipeline.schema import MAX_TEXT_CHARS, FeedbackRecord, customer_ref, utcnow

FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")
#: The fields whose values a re-rendered form shows again (never the honeypot).
KEPT_FIELDS = ("nps_score", "csat_score", "comment", "email", "consent", "product", "submission_id")
#: Checkbox values meaning "ticked" (browsers send "on" unless the box has a value).
TICKED = {"on", "yes", "true", "1"}
SUBMISSION_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")


class FormSubmission(BaseModel):
    """What the feedback form sends: a score (NPS or CSAT), a comment, or both; ``website`` is a honeypot.

    Guarantees: at least one of ``nps_score``, ``csat_score`` and ``comment`` is given; blank fields
    are ``None``; ``consent`` is True only with an ``email`` to contact.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    comment: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    nps_score: int | None = Field(default=None, ge=0, le=10)
    csat_score: int | None = Field(default=None, ge=1, le=5)
    email: EmailStr | None = None
    consent: bool = Field(default=False, description="'You may contact me about this feedback' was ticked.")
    product: str | None = Field(default=None, max_length=500)
    submission_id: str | None = Field(default=None, pattern=SUBMISSION_ID.pattern)
    website: str | None = Field(default=None, description="Honeypot: must stay empty.")

    @field_validator("comment", "nps_score", "csat_score", "email", "product", "submission_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("consent", mode="before")
    @classmethod
    def _checkbox(cls, value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower() in TICKED
        return bool(value) if value is not None else False

    @model_validator(mode="after")
    def _score_or_comment(self) -> FormSubmission:
        if self.comment is None and self.nps_score is None and self.csat_score is None:
            raise ValueError("give a score or a comment")
        if self.consent and self.email is None:
            raise ValueError("consent to be contacted needs an e-mail address")
        return self


#: Field of a validation error -> the text key of its plain-language message.
_FIELD_MESSAGES = {"nps_score": "error_nps", "csat_score": "error_csat", "comment": "error_comment_long",
                   "email": "error_email", "consent": "error_field", "product": "error_field"}


def field_errors(exc: ValidationError, texts: dict[str, str]) -> dict[str, str]:
    """Plain-language messages by form field (never pydantic's wording); ``_form`` for the whole form."""
    out: dict[str, str] = {}
    for err in exc.errors(include_url=False, include_input=False):
        field = str(err["loc"][0]) if err["loc"] else ""
        if field in _FIELD_MESSAGES:
            out.setdefault(field, texts[_FIELD_MESSAGES[field]])
        elif field == "submission_id":
            continue  # a tampered hidden field: the re-rendered form carries a fresh one
        elif "e-mail address" in err["msg"]:  # the model validator's consent rule
            out.setdefault("email", texts["error_consent_email"])
        else:
            out.setdefault("nps_score", texts["error_score_or_comment"])
    return out


def kept_values(fields: dict[str, Any]) -> dict[str, str]:
    """What the customer sent, as strings for the form's controls (bounded; never the honeypot)."""
    out = {}
    for name in KEPT_FIELDS:
        value = fields.get(name)
        if isinstance(value, bool):
            value = "on" if value else ""
        if value is not None and not isinstance(value, dict | list):
            out[name] = str(value)[:MAX_TEXT_CHARS]
    return out


class FormPages:
    """Renders the form, the thank-you page and the error pages in the form's language.

    Guarantees: every page is HTML with the values the customer sent kept in the form (when they
    could be read), a message next to the field it concerns, and the same submission id (so sending
    again after an error can never count the answer twice).
    """

    def __init__(self, templates: Jinja2Templates, texts: FormTexts, consent: bool = False) -> None:
        self.templates, self.texts, self.consent = templates, texts, consent

    def form(self, request: Request, form_id: str, values: dict[str, str] | None = None,
             errors: dict[str, str] | None = None, notice: str | None = None, status: int = 200,
             headers: dict[str, str] | None = None) -> HTMLResponse:
        values = dict(values or {})
        if status >= 400 and not errors and not notice:  # e.g. a tampered hidden field: say something
            notice = self.texts.texts(form_id)["page_400"]
        if not SUBMISSION_ID.match(values.get("submission_id", "")):
            values["submission_id"] = str(uuid.uuid4())
        return self.templates.TemplateResponse(
            request, "form.html",
            {"form_id": form_id, "t": self.texts.texts(form_id), "values": values, "errors": errors or {},
             "notice": notice, "consent": self.consent}, status_code=status, headers=headers)

    def thanks(self, request: Request, form_id: str, consent: bool) -> HTMLResponse:
        return self.templates.TemplateResponse(
            request, "thanks.html",
            {"form_id": form_id, "t": self.texts.texts(form_id), "consent": consent and self.consent})

    def error(self, request: Request, form_id: str, exc: ApiError, fields: dict[str, Any] | None) -> HTMLResponse:
        """The form again for a rejected submission, with the page message of its status."""
        texts = self.texts.texts(form_id)
        key = f"page_{exc.status}"
        notice = texts.get(key) or texts["page_400"]
        headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() == "retry-after"}
        return self.form(request, form_id, kept_values(fields or {}), {}, notice, exc.status, headers)


def form_record(form_id: str, submission: FormSubmission, customer_key: bytes, sealer: ContactSealer,
                language: str) -> FeedbackRecord:
    """The record of one accepted submission: score-only when there is no comment; the address only as
    a keyed hash, and sealed for the follow-up sink when the customer agreed to be contacted."""
    return FeedbackRecord(
        source="webform",
        channel=f"form:{form_id}",
        source_ref=f"{form_id}:{submission.submission_id or uuid.uuid4()}",
        customer_ref=customer_ref(submission.email, customer_key) if submission.email else None,
        text=submission.comment or "",
        nps_score=submission.nps_score,
        csat_score=submission.csat_score,
        product=submission.product,
        contact=sealer.seal(submission.email) if submission.consent and submission.email and sealer.enabled else None,
        language=language,
        received_at=utcnow(),
    )


async def parse_form_body(request: Request, media: str, body: bytes) -> dict[str, Any]:
    """The submitted fields as a dict; ApiError 400/415 for a body that is not a form at all."""
    if is_json(media):
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ApiError(400, "malformed_json", f"the body is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise ApiError(400, "too_deeply_nested", "the JSON is nested too deeply") from exc
        if not isinstance(data, dict):
            raise ApiError(422, "validation_failed", "expected a JSON object with the form fields")
        return data
    if media not in FORM_MEDIA:
        raise ApiError(415, "unsupported_media_type",
                       "send application/x-www-form-urlencoded, multipart/form-data or application/json")
    try:
        form = await request.form(max_files=0, max_fields=50)
    except Exception as exc:  # malformed multipart boundaries, bad encodings, too many fields
        raise ApiError(400, "malformed_form", f"the form body cannot be parsed: {exc}") from exc
    return {k: v for k, v in form.items() if isinstance(v, str)}
