"""``/webhooks/generic``: a documented ticket-event format for in-house and other support tools.

::

    {"system": "acme-desk",                      # becomes channel and the id prefix
     "event": "ticket.created" | "comment.created" | "rating.created" | "ticket.updated",
     "ticket": {"id": "T-1", "subject": "...", "description": "...", "status": "open",
                "priority": "high", "group": "billing", "type": "question", "tags": ["vip"],
                "requester_email": "...", "created_at": "...", "updated_at": "...",
                "solved": false, "solved_at": null},
     "comment": {"id": "c-9", "body": "...", "public": true, "by_customer": true, "created_at": "..."},
     "rating": {"id": "r-3", "score": 4 | "good" | "bad", "comment": "...", "created_at": "..."}}
"""

from __future__ import annotations

import re
from typing import Any

from connectors.tickets.model import Mapped, RecordFactory, Ticket, as_dict, parse_time, require_id, version_of
from pipeline.errors import RecordError

SYSTEM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
RESERVED = {"zendesk", "freshdesk", "jira"}


def score_of(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 1 <= raw <= 5 else None
    return {"good": 5, "bad": 1}.get(str(raw).strip().lower()) if raw is not None else None


def map_webhook(payload: Any, factory: RecordFactory) -> Mapped:
    """One generic delivery -> records; RecordError('unknown_event'|'invalid_payload') when unusable."""
    data = as_dict(payload, "the payload")
    system = str(data.get("system") or "generic").strip().lower()
    if not SYSTEM_NAME.match(system) or system in RESERVED:
        raise RecordError("invalid_payload", "system must match [a-z0-9][a-z0-9_-]{0,39} and not name a "
                                             "system with its own route")
    event = data.get("event")
    raw = as_dict(data.get("ticket"), "ticket")
    status = str(raw["status"]).strip().lower() if raw.get("status") else None
    tags = raw.get("tags")
    ticket = Ticket(
        system=system,
        ticket_id=require_id(raw.get("id"), "ticket.id"),
        subject=raw.get("subject"),
        description=raw.get("description"),
        status=status,
        priority=str(raw["priority"]).strip().lower() if raw.get("priority") else None,
        group=raw.get("group"),
        ticket_type=raw.get("type"),
        tags=[str(t) for t in tags] if isinstance(tags, list) else None,
        created_at=parse_time(raw.get("created_at")),
        updated_at=parse_time(raw.get("updated_at")),
        solved=raw.get("solved") if isinstance(raw.get("solved"), bool) else None,
        solved_at=parse_time(raw.get("solved_at")),
        requester=raw.get("requester_email") or None,
        channel=system,
    )
    mapped = Mapped()
    if event == "ticket.created":
        factory.created(ticket, mapped)
    elif event == "comment.created":
        comment = as_dict(data.get("comment"), "comment")
        if comment.get("public") is False:
            mapped.skipped.append("internal_note")
        elif comment.get("by_customer") is False:
            mapped.skipped.append("agent_reply")
        else:
            factory.comment(ticket, comment.get("id"), comment.get("body"), parse_time(comment.get("created_at")),
                            mapped)
    elif event == "rating.created":
        rating = as_dict(data.get("rating"), "rating")
        score = score_of(rating.get("score"))
        if score is None:
            raise RecordError("invalid_payload", "rating.score must be 1-5, 'good' or 'bad'")
        factory.rating(ticket, rating.get("id"), score, str(rating.get("score")), rating.get("comment"),
                       parse_time(rating.get("created_at")) or ticket.updated_at, mapped)
    elif event == "ticket.updated":
        factory.state(ticket, version_of(ticket, str(data.get("id") or "update")), mapped)
    else:
        raise RecordError("unknown_event", f"unsupported event {str(event)[:100]!r}")
    return mapped
