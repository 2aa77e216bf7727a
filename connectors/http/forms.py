"""The feedback form's fields and the parsing of its three encodings (urlencoded, multipart, JSON)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict, EmailStr, Field, field_validator, model_validator

from connectors.http.errors import ApiError, is_json
from pipeline.schema import MAX_TEXT_CHARS

FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")


class FormSubmission(BaseModel):
    """What the feedback form sends: a score (NPS or CSAT), a comment, or both; ``website`` is a honeypot."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    comment: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    nps_score: int | None = Field(default=None, ge=0, le=10)
    csat_score: int | None = Field(default=None, ge=1, le=5)
    email: EmailStr | None = None
    product: str | None = Field(default=None, max_length=500)
    submission_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{8,64}$")
    website: str | None = Field(default=None, description="Honeypot: must stay empty.")

    @field_validator("comment", "nps_score", "csat_score", "email", "product", "submission_id", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _score_or_comment(self) -> FormSubmission:
        if self.comment is None and self.nps_score is None and self.csat_score is None:
            raise ValueError("give a score or a comment")
        return self


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
