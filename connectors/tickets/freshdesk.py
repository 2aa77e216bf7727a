"""Freshdesk automation-rule webhooks -> ticket records.

Freshdesk's "Trigger webhook" action posts either its simple JSON (``{"freshdesk_webhook": {...}}``
with ``ticket_*`` keys and ``triggered_event`` such as ``{ticket_action:created}``,
``{note_type:public}``, ``{status:{from:2,to:4}}``) or an advanced body the admin writes with the
same keys (see the README). Satisfaction: ``satisfaction_rating`` as Freshdesk's survey code
(103 … -103) or its label, with ``satisfaction_comment``.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.tickets.model import Mapped, RecordFactory, Ticket, as_dict, parse_time, require_id, version_of
from pipeline.errors import RecordError

SYSTEM = "freshdesk"
STATUS_CODES = {"2": "open", "3": "pending", "4": "resolved", "5": "closed"}
PRIORITY_CODES = {"1": "low", "2": "medium", "3": "high", "4": "urgent"}
SOLVED = {"resolved", "closed"}
#: Freshdesk survey answers (codes and labels) -> CSAT 1-5.
RATINGS = {
    "103": 5, "102": 5, "101": 4, "100": 3, "-101": 2, "-102": 1, "-103": 1,
    "extremely happy": 5, "very happy": 5, "happy": 4, "neutral": 3, "unhappy": 2,
    "very unhappy": 1, "extremely unhappy": 1,
}
_EVENT = re.compile(r"^\{?\s*([a-z_]+)\s*:\s*\{?\s*(.*?)\s*\}?\s*\}?$", re.IGNORECASE)


def _field(data: dict[str, Any], *names: str) -> Any:
    for name in names:
        for key in (name, f"ticket_{name}"):
            value = data.get(key)
            if value not in (None, ""):
                return value
    return None


def _name(value: Any, codes: dict[str, str]) -> str | None:
    if value in (None, ""):
        return None
    text = str(value).strip()
    return codes.get(text, text.lower())


def parse_event(value: Any) -> tuple[str, str]:
    """``{ticket_action:created}`` -> (``ticket_action``, ``created``); ``{status:{from:2,to:4}}`` ->
    (``status``, ``from:2,to:4``); anything else -> RecordError('unknown_event')."""
    match = _EVENT.match(str(value or "").strip())
    if not match:
        raise RecordError("unknown_event", f"unrecognised triggered_event {str(value)[:100]!r}")
    return match.group(1).lower(), match.group(2).lower()


def rating_of(raw: Any) -> int | None:
    return RATINGS.get(str(raw).strip().lower()) if raw not in (None, "") else None


def ticket_from(data: dict[str, Any]) -> Ticket:
    status = _name(_field(data, "status"), STATUS_CODES)
    tags = _field(data, "tags")
    return Ticket(
        system=SYSTEM,
        ticket_id=require_id(_field(data, "id"), "ticket_id"),
        subject=_field(data, "subject"),
        description=_field(data, "description_text", "description"),
        status=status,
        priority=_name(_field(data, "priority"), PRIORITY_CODES),
        group=_field(data, "group_name", "group"),
        ticket_type=_name(_field(data, "type"), {}),
        tags=[t.strip() for t in tags.split(",") if t.strip()] if isinstance(tags, str)
        else [str(t) for t in tags] if isinstance(tags, list) else None,
        created_at=parse_time(_field(data, "created_at")),
        updated_at=parse_time(_field(data, "updated_at")),
        solved=(status in SOLVED) if status else None,
        solved_at=parse_time(_field(data, "resolved_at")),
        requester=_field(data, "requester_email", "contact_email"),
        channel=SYSTEM,
    )


def map_webhook(payload: Any, factory: RecordFactory) -> Mapped:
    """One Freshdesk delivery -> records; RecordError('unknown_event'|'invalid_payload') when unusable."""
    root = as_dict(payload, "the payload")
    data = as_dict(root.get("freshdesk_webhook", root), "freshdesk_webhook")
    kind, value = parse_event(data.get("triggered_event"))
    ticket = ticket_from(data)
    mapped = Mapped()
    if kind == "ticket_action" and value == "created":
        factory.created(ticket, mapped)
    elif kind == "note_type" and value == "private":
        mapped.skipped.append("internal_note")
    elif kind in ("note_type", "reply", "customer_reply", "requester_reply"):
        comment_id = _field(data, "note_id", "comment_id", "conversation_id")
        factory.comment(ticket, comment_id, _field(data, "latest_public_comment", "comment"),
                        parse_time(_field(data, "comment_created_at")), mapped)
    elif kind in ("customer_feedback", "satisfaction", "survey") or _field(data, "satisfaction_rating"):
        raw = _field(data, "satisfaction_rating")
        if raw is None:
            raise RecordError("invalid_payload", "a feedback event needs satisfaction_rating")
        factory.rating(ticket, _field(data, "satisfaction_id", "survey_result_id"), rating_of(raw), str(raw),
                       _field(data, "satisfaction_comment"),
                       parse_time(_field(data, "satisfaction_created_at")) or ticket.updated_at, mapped)
    elif kind in ("status", "priority", "group", "ticket_action", "tags", "type", "agent"):
        if kind == "status" and not ticket.status:  # only the change was sent: take its target
            target = dict(p.split(":", 1) for p in value.split(",") if ":" in p).get("to")
            ticket.status = _name(target, STATUS_CODES)
            ticket.solved = ticket.status in SOLVED if ticket.status else None
        factory.state(ticket, version_of(ticket, f"{kind}:{value}"), mapped)
    else:
        raise RecordError("unknown_event", f"unsupported triggered_event {kind!r}")
    return mapped
