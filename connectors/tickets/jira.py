"""Jira Service Management / Jira Cloud webhooks -> ticket records.

``webhookEvent``: ``jira:issue_created`` (summary + description), ``comment_created`` /
``comment_updated`` (``jsdPublic: false`` or a ``visibility`` restriction = internal: skipped; a
comment by someone other than the reporter = an agent's reply: skipped), ``jira:issue_updated``
(state; plus the JSM satisfaction field ``{"rating": 1-5}`` when the issue carries one). The ticket
id is the issue's stable numeric id; its key (``SD-12``) is kept in ``attributes.ticket_key``.
"""

from __future__ import annotations

from typing import Any

from connectors.tickets.model import (
    Mapped,
    RecordFactory,
    Ticket,
    as_dict,
    obj,
    parse_time,
    require_id,
    version_of,
)
from pipeline.errors import RecordError

SYSTEM = "jira"


def adf_text(node: Any) -> str:
    """Plain text of a description/comment: a wiki-markup string or an Atlassian Document (ADF)."""
    if node is None:
        return ""
    if isinstance(node, str):
        return node
    if isinstance(node, list):
        return "".join(adf_text(n) for n in node)
    if isinstance(node, dict):
        if node.get("type") == "text":
            return str(node.get("text") or "")
        if node.get("type") == "hardBreak":
            return "\n"
        inner = adf_text(node.get("content"))
        block = node.get("type") in ("paragraph", "heading", "listItem", "blockquote", "codeBlock")
        return inner + ("\n" if block else "")
    return ""


def _name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name") or value.get("value")
    return str(value).strip() or None if value not in (None, "") else None


def _person(value: Any) -> tuple[str | None, str | None]:
    """(accountId or name, e-mail) of a Jira user object."""
    if not isinstance(value, dict):
        return None, None
    ident = value.get("accountId") or value.get("key") or value.get("name")
    return (str(ident) if ident else None), value.get("emailAddress") or None


def ticket_from(issue: dict[str, Any]) -> Ticket:
    fields = obj(issue.get("fields"))
    status = obj(fields.get("status"))
    category = obj(status.get("statusCategory"))
    resolved_at = parse_time(fields.get("resolutiondate"))
    reporter_id, reporter_email = _person(fields.get("reporter"))
    components = fields.get("components") if isinstance(fields.get("components"), list) else []
    labels = fields.get("labels")
    name = _name(status)
    return Ticket(
        system=SYSTEM,
        ticket_id=require_id(issue.get("id") or issue.get("key"), "issue.id"),
        subject=fields.get("summary"),
        description=adf_text(fields.get("description")),
        status=name.lower() if name else None,
        priority=(_name(fields.get("priority")) or "").lower() or None,
        group=_name(components[0]) if components else None,
        ticket_type=_name(fields.get("issuetype")),
        tags=[str(x) for x in labels] if isinstance(labels, list) else None,
        created_at=parse_time(fields.get("created")),
        updated_at=parse_time(fields.get("updated")),
        solved=(category.get("key") == "done" or resolved_at is not None) if (name or resolved_at) else None,
        solved_at=resolved_at,
        requester=reporter_email or (f"jira-user:{reporter_id}" if reporter_id else None),
        channel=SYSTEM,
        extra={"ticket_key": str(issue["key"])[:100]} if issue.get("key") else {},
    )


def _satisfaction(fields: dict[str, Any]) -> tuple[str, int, str | None] | None:
    """(field id, rating 1-5, comment) of the JSM satisfaction field, when the issue has one."""
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(value.get("rating"), int) and 1 <= value["rating"] <= 5:
            said = value.get("comment")
            return key, value["rating"], adf_text(said.get("body") if isinstance(said, dict) else said) or None
    return None


def map_webhook(payload: Any, factory: RecordFactory) -> Mapped:
    """One Jira delivery -> records; RecordError('unknown_event'|'invalid_payload') when unusable."""
    data = as_dict(payload, "the payload")
    event = data.get("webhookEvent")
    if event not in ("jira:issue_created", "jira:issue_updated", "comment_created", "comment_updated"):
        raise RecordError("unknown_event", f"unsupported webhookEvent {str(event)[:100]!r}")
    issue = as_dict(data.get("issue"), "issue")
    ticket = ticket_from(issue)
    mapped = Mapped()
    if event == "jira:issue_created":
        factory.created(ticket, mapped)
    elif event in ("comment_created", "comment_updated"):
        comment = as_dict(data.get("comment"), "comment")
        author_id, _ = _person(comment.get("author"))
        reporter_id, _ = _person(obj(issue.get("fields")).get("reporter"))
        if comment.get("jsdPublic") is False or comment.get("visibility"):
            mapped.skipped.append("internal_note")
        elif author_id and reporter_id and author_id != reporter_id:
            mapped.skipped.append("agent_reply")
        else:
            factory.comment(ticket, comment.get("id"), adf_text(comment.get("body")),
                            parse_time(comment.get("created")), mapped)
    else:
        fallback = str(data.get("timestamp") or obj(data.get("changelog")).get("id") or "update")
        factory.state(ticket, version_of(ticket, fallback), mapped)
        rating = _satisfaction(obj(issue.get("fields")))
        if rating is not None:
            field_id, score, said = rating
            factory.rating(ticket, field_id, score, str(score), said, ticket.updated_at, mapped)
    return mapped
