"""Typeform's ``form_response`` webhook as a :class:`~pipeline.webhooks.WebhookSource`.

Authenticity: Typeform signs the raw body with the form's webhook secret and sends
``Typeform-Signature: sha256=<base64(HMAC-SHA256(secret, body))>``; any of the configured secrets
(``FEEDBACK_TYPEFORM_WEBHOOK_SECRET``, comma-separated: one per form, or old and new during a
rotation) may match; the comparison is constant-time.

Mapping of one response (Typeform's documented payload: ``event_id``, ``event_type``,
``form_response`` with ``form_id``, ``token``, ``submitted_at``, ``hidden``, ``definition.fields`` and
``answers``, each answer naming its ``field`` and carrying a typed value):

- ``long_text`` answers -> ``text`` (several are joined by blank lines, in answer order);
- an ``nps`` answer, or an ``opinion_scale`` of 11 steps from 0 -> ``nps_score`` (0-10);
- an ``opinion_scale`` of 5 steps from 1 -> ``csat_score``; a ``rating`` of at most 5 steps -> ``stars``;
- an ``email`` answer (or a hidden field ``email``) -> ``customer_ref`` (keyed hash, never the address);
  a hidden field ``product`` -> ``product``;
- ``source_ref`` is ``typeform:<form_id>:<token>`` (the response's token), so a re-delivery keeps its id.

A response without a long-text answer is skipped with reason ``no_text`` (the record contract needs
the customer's words); a payload that is not a ``form_response`` is refused with 422.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from pipeline.config import HttpSettings
from pipeline.errors import RecordError
from pipeline.schema import FeedbackRecord, customer_ref, utcnow
from pipeline.webhooks import Mapped, WebhookRejected, secrets_of

SIGNATURE_HEADER = "typeform-signature"


def signature(secret: bytes, body: bytes) -> str:
    """The ``Typeform-Signature`` value of ``body`` under ``secret``."""
    return "sha256=" + base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def _field_definitions(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    fields = _object(response.get("definition")).get("fields")
    return {str(f.get("id")): f for f in fields or [] if isinstance(f, dict)}


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _scale(definition: dict[str, Any]) -> tuple[int | None, bool]:
    """An opinion scale's steps and whether it starts at one (Typeform's field properties)."""
    props = _object(definition.get("properties"))
    steps = props.get("steps")
    return (steps if isinstance(steps, int) else None), bool(props.get("start_at_one"))


def _number(answer: dict[str, Any], ftype: str, definition: dict[str, Any], out: dict[str, Any]) -> None:
    value = answer.get("number")
    if not isinstance(value, int) or isinstance(value, bool):
        raise RecordError("invalid_payload", f"the {ftype} answer is not a whole number")
    steps, from_one = _scale(definition)
    if ftype == "nps" or (ftype == "opinion_scale" and steps in (None, 11) and not from_one):
        out.setdefault("nps_score", value)
    elif ftype == "opinion_scale" and steps == 5 and from_one:
        out.setdefault("csat_score", value)
    elif ftype == "rating" and (steps is None or steps <= 5):
        out.setdefault("stars", value)


def _answers(response: dict[str, Any], key: bytes) -> tuple[list[str], dict[str, Any]]:
    """The long texts and the record fields of a response's answers."""
    definitions = _field_definitions(response)
    texts: list[str] = []
    out: dict[str, Any] = {}
    answers = response.get("answers") or []
    if not isinstance(answers, list):
        raise RecordError("invalid_payload", "form_response.answers must be an array")
    for answer in answers:
        if not isinstance(answer, dict) or not isinstance(answer.get("field"), dict):
            raise RecordError("invalid_payload", "each answer must be an object with its field")
        field = answer["field"]
        ftype = str(field.get("type") or "")
        definition = definitions.get(str(field.get("id")), {})
        if ftype == "long_text" and isinstance(answer.get("text"), str) and answer["text"].strip():
            texts.append(answer["text"].strip())
        elif ftype in ("nps", "opinion_scale", "rating"):
            _number(answer, ftype, definition, out)
        elif ftype == "email" and isinstance(answer.get("email"), str):
            out.setdefault("customer_ref", customer_ref(answer["email"], key))
    hidden = _object(response.get("hidden"))
    if isinstance(hidden.get("email"), str) and hidden["email"]:
        out.setdefault("customer_ref", customer_ref(hidden["email"], key))
    if isinstance(hidden.get("product"), str) and hidden["product"]:
        out["product"] = hidden["product"][:200]
    return texts, out


def map_form_response(payload: Any, key: bytes) -> Mapped:
    """One webhook delivery -> at most one record (see the module docstring)."""
    if not isinstance(payload, dict):
        raise RecordError("invalid_payload", "the body must be a JSON object")
    if payload.get("event_type") != "form_response":
        raise RecordError("unknown_event", f"unsupported event_type {payload.get('event_type')!r}")
    response = payload.get("form_response")
    if not isinstance(response, dict):
        raise RecordError("invalid_payload", "form_response must be an object")
    form_id, token = response.get("form_id"), response.get("token")
    if not isinstance(form_id, str) or not form_id or not isinstance(token, str) or not token:
        raise RecordError("invalid_payload", "form_response.form_id and form_response.token are required")
    texts, fields = _answers(response, key)
    if not texts:
        return Mapped(skipped=["no_text"])
    definition = _object(response.get("definition"))
    attributes: dict[str, Any] = {"typeform_form_id": form_id, "typeform_event_id": str(payload.get("event_id"))}
    if isinstance(definition.get("title"), str):
        attributes["typeform_title"] = definition["title"][:200]
    record = FeedbackRecord(
        source="webform", channel=f"typeform:{form_id}", source_ref=f"typeform:{form_id}:{token}",
        text="\n\n".join(texts), event_time=response.get("submitted_at") or utcnow(), received_at=utcnow(),
        attributes=attributes, **fields,
    )
    return Mapped(records=[record])


class TypeformWebhook:
    """Typeform's form_response webhook. Guarantees: as :class:`~pipeline.webhooks.WebhookSource`; a
    re-delivery of a response maps to the same ``feedback_id``; the respondent's e-mail is only ever
    stored as a keyed hash."""

    name = "typeform"
    setting = "FEEDBACK_TYPEFORM_WEBHOOK_SECRET"

    def __init__(self, settings: HttpSettings) -> None:
        self.keys = secrets_of(settings.typeform_webhook_secret)
        self.customer_key = settings.customer_key()

    def configured(self) -> bool:
        return bool(self.keys)

    def verify(self, headers: Mapping[str, str], body: bytes, query: Mapping[str, str]) -> None:
        given = headers.get(SIGNATURE_HEADER, "")
        if not given:
            raise WebhookRejected("missing_signature", "the Typeform-Signature header is required")
        # compare with every secret so timing does not reveal which one nearly matched
        if not any([hmac.compare_digest(given.encode(), signature(k, body).encode()) for k in self.keys]):
            raise WebhookRejected("bad_signature", "the webhook signature does not match")

    def map(self, payload: Any) -> Mapped:
        return map_form_response(payload, self.customer_key)


def typeform_webhook(settings: HttpSettings) -> TypeformWebhook:
    """The factory registered under ``feedback.webhooks`` (pyproject.toml)."""
    return TypeformWebhook(settings)
