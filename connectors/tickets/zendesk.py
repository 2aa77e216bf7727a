"""Zendesk payloads -> ticket records: webhook events (and trigger bodies) and REST export objects.

Webhooks: Zendesk's event-subscription payloads (``"type": "zen:event-type:ticket.…"`` with the
ticket in ``detail`` and the change in ``event``) and, for satisfaction ratings, which are only
reachable through triggers, the trigger body documented in the README (``ticket`` + ``satisfaction``
built from placeholders). Polling: ticket objects of the incremental export and their comments.
"""

from __future__ import annotations

from typing import Any

from connectors.tickets.model import (
    Mapped,
    RecordFactory,
    Ticket,
    as_dict,
    html_to_text,
    obj,
    parse_time,
    require_id,
    version_of,
)
from pipeline.errors import RecordError

SYSTEM = "zendesk"
SOLVED = {"solved", "closed"}
EVENT_PREFIX = "zen:event-type:ticket."
SCORES = {"good": 5, "bad": 1}


def _lower(value: Any) -> str | None:
    if value in (None, ""):
        return None
    return str(value).strip().lower() or None


def _tags(value: Any) -> list[str] | None:
    if isinstance(value, list):
        return [str(t) for t in value if t not in (None, "")]
    if isinstance(value, str):  # the {{ticket.tags}} placeholder renders space-separated tags
        return value.split()
    return None


def score_of(raw: Any) -> int | None:
    """Zendesk's good/bad (``Good``, ``good_with_comment``, ...) -> CSAT 5/1; offered/unoffered -> None."""
    text = str(raw or "").strip().lower()
    for word, score in SCORES.items():
        if text.startswith(word):
            return score
    return None


def ticket_from(data: dict[str, Any], *, requester: str | None = None, group: str | None = None,
                solved_at: Any = None) -> Ticket:
    """A Ticket from a Zendesk ticket object (REST or an event's ``detail``; enums in any case)."""
    status = _lower(data.get("status"))
    requester_id = data.get("requester_id")
    return Ticket(
        system=SYSTEM,
        ticket_id=require_id(data.get("id"), "ticket id"),
        subject=data.get("subject") or data.get("raw_subject"),
        description=data.get("description"),
        status=status,
        priority=_lower(data.get("priority")),
        group=group or (str(data["group_id"]) if data.get("group_id") not in (None, "", 0, "0") else None),
        ticket_type=_lower(data.get("type")),
        tags=_tags(data.get("tags")),
        created_at=parse_time(data.get("created_at")),
        updated_at=parse_time(data.get("updated_at")),
        solved=(status in SOLVED) if status else None,
        solved_at=parse_time(solved_at),
        requester=requester or (f"zendesk-user:{requester_id}" if requester_id not in (None, "") else None),
        channel=SYSTEM,
    )


# -- webhooks ------------------------------------------------------------------------------------------
def map_webhook(payload: Any, factory: RecordFactory) -> Mapped:
    """One webhook delivery -> records; RecordError('unknown_event'|'invalid_payload') when unusable."""
    data = as_dict(payload, "the payload")
    kind = data.get("type")
    mapped = Mapped()
    if isinstance(kind, str) and kind.startswith(EVENT_PREFIX):
        ticket = ticket_from(as_dict(data.get("detail"), "detail"))
        event = obj(data.get("event"))
        name = kind.removeprefix(EVENT_PREFIX)
        if name == "created":
            factory.created(ticket, mapped)
        elif name == "comment_added":
            _webhook_comment(ticket, as_dict(event.get("comment"), "event.comment"), data, factory, mapped)
        else:  # status, priority, tags, group, ... changed: the detail carries the whole state
            factory.state(ticket, version_of(ticket, str(data.get("id") or name)), mapped)
        return mapped
    if kind is None and isinstance(data.get("ticket"), dict):
        return _trigger_body(data, factory)
    raise RecordError("unknown_event", f"not a Zendesk ticket event: type={str(kind)[:100]!r}")


def _webhook_comment(ticket: Ticket, comment: dict[str, Any], data: dict[str, Any], factory: RecordFactory,
                     mapped: Mapped) -> None:
    author = obj(comment.get("author"))
    body = comment.get("body")
    if comment.get("is_public") is False or comment.get("public") is False:
        mapped.skipped.append("internal_note")
    elif author.get("is_staff") is True:
        mapped.skipped.append("agent_reply")
    elif ticket.description and html_to_text(body) == html_to_text(ticket.description):
        mapped.skipped.append("description_comment")  # the ticket record already holds it
    else:
        factory.comment(ticket, comment.get("id"), body, parse_time(comment.get("created_at") or data.get("time")),
                        mapped)


def _trigger_body(data: dict[str, Any], factory: RecordFactory) -> Mapped:
    raw = data["ticket"]
    email = raw.get("requester_email") or None
    ticket = ticket_from({**raw, "group_id": None}, requester=email, group=raw.get("group") or None)
    mapped = Mapped()
    satisfaction = data.get("satisfaction")
    if isinstance(satisfaction, dict):
        score = str(satisfaction.get("score") or "")
        factory.rating(ticket, satisfaction.get("id"), score_of(score), score.lower(),
                       satisfaction.get("comment"), parse_time(satisfaction.get("created_at")) or ticket.updated_at,
                       mapped)
    else:
        factory.state(ticket, version_of(ticket, "trigger"), mapped)
    return mapped


# -- polling (REST objects) ---------------------------------------------------------------------------
def map_export_ticket(data: dict[str, Any], sideloads: dict[str, dict[Any, dict[str, Any]]],
                      factory: RecordFactory) -> tuple[Ticket, Mapped]:
    """A ticket of the incremental export -> its ticket record and its satisfaction rating."""
    users, groups, metrics = sideloads.get("users", {}), sideloads.get("groups", {}), sideloads.get("metric_sets", {})
    requester = users.get(data.get("requester_id"), {}).get("email")
    group = groups.get(data.get("group_id"), {}).get("name")
    solved_at = metrics.get(data.get("id"), {}).get("solved_at")
    ticket = ticket_from(data, requester=requester, group=group, solved_at=solved_at)
    mapped = Mapped()
    if data.get("status") == "deleted":
        mapped.skipped.append("deleted_ticket")
        return ticket, mapped
    factory.created(ticket, mapped)
    rating = data.get("satisfaction_rating")
    if isinstance(rating, dict) and score_of(rating.get("score")) is not None:
        factory.rating(ticket, rating.get("id"), score_of(rating.get("score")), str(rating.get("score")),
                       rating.get("comment"), parse_time(rating.get("created_at")) or ticket.updated_at, mapped)
    return ticket, mapped


def map_comments(ticket: Ticket, comments: list[dict[str, Any]], roles: dict[Any, str],
                 factory: RecordFactory) -> Mapped:
    """A ticket's comments (in the API's chronological order) -> public end-user comments.

    The first comment is the ticket's description, which the ticket record already holds: skipped.
    """
    mapped = Mapped()
    description = html_to_text(ticket.description)
    for index, comment in enumerate(comments):
        role = roles.get(comment.get("author_id"), "end-user")
        body = comment.get("plain_body") or comment.get("body")
        if index == 0 or (description and html_to_text(body) == description):
            continue
        if comment.get("public") is False:
            mapped.skipped.append("internal_note")
        elif role != "end-user":
            mapped.skipped.append("agent_reply")
        else:
            factory.comment(ticket, comment.get("id"), body, parse_time(comment.get("created_at")), mapped)
    return mapped
