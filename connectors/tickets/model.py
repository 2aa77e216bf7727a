"""The shape every ticket system is mapped to, and the :class:`FeedbackRecord`\\ s built from it.

Identity (``source="ticket"``, ``thread_ref`` = the ticket, ``channel`` = the system):

=================  ==========================================  ==========================================
item               ``source_ref``                              ``attributes.ticket_event``
=================  ==========================================  ==========================================
ticket (created)   ``zendesk:ticket:123``                      ``created``  (subject + description)
public comment     ``zendesk:ticket:123:comment:456``          ``comment``
satisfaction       ``zendesk:ticket:123:rating:789``           ``rating``   (``csat_score`` 1-5)
state change       ``zendesk:ticket:123:state:<version>``      ``state``    (tickets table only)
=================  ==========================================  ==========================================

Every record carries the ticket's state as flat attributes (``ticket_status``, ``ticket_priority``,
``ticket_group``, ``ticket_type``, ``ticket_tags``, ``ticket_created_at``, ``ticket_updated_at``,
``ticket_solved``, ``ticket_solved_at``); the warehouse sink folds them into its ``tickets`` table.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lxml import html as lxml_html

from pipeline.errors import RecordError
from pipeline.schema import MAX_TEXT_CHARS, TICKET_STATE_EVENT, FeedbackRecord, customer_ref, utcnow
from pipeline.webhooks import Mapped

SYSTEMS = ("zendesk", "freshdesk", "jira", "generic")

_BLOCKS = {"br", "p", "div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table"}


def html_to_text(value: str | None) -> str:
    """Visible text of an HTML fragment (line breaks kept at <br> and block ends); plain text as is."""
    if not value:
        return ""
    if "<" not in value:
        return value.strip()
    try:
        doc = lxml_html.fromstring(value)
    except Exception:  # lxml raises ParserError for markup-only input; nothing visible then
        return ""
    for el in doc.iter():
        if isinstance(el.tag, str) and el.tag in _BLOCKS:
            el.tail = "\n" + (el.tail or "")
    return "\n".join(line.strip() for line in doc.text_content().splitlines()).strip()


def parse_time(value: Any) -> datetime | None:
    """ISO 8601 (``Z``, ``+00:00`` or ``+0000``), Unix seconds or milliseconds -> aware UTC; else None."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            seconds = value / 1000 if value > 1e11 else value
            return datetime.fromtimestamp(seconds, UTC)
        text = str(value).strip()
        if text.isdigit():
            return parse_time(int(text))
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _short(value: Any, limit: int = 1000) -> str | None:
    if value is None or value == "":
        return None
    return str(value).strip()[:limit] or None


def text_digest(text: str) -> str:
    """A stable id for an item the source system gives no id (16 hex chars of SHA-256)."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Ticket:
    """What is known about one ticket at one moment; ``None`` means "not in this payload"."""

    system: str
    ticket_id: str
    subject: str | None = None
    description: str | None = None
    status: str | None = None
    priority: str | None = None
    group: str | None = None
    ticket_type: str | None = None
    tags: list[str] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    solved: bool | None = None
    solved_at: datetime | None = None
    requester: str | None = None
    channel: str | None = None
    extra: dict[str, str | int | float | bool | None] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return f"{self.system}:ticket:{self.ticket_id}"

    def attributes(self, event: str, **extra: Any) -> dict[str, str | int | float | bool | None]:
        attrs: dict[str, Any] = {
            "ticket_system": self.system,
            "ticket_id": _short(self.ticket_id, 200),
            "ticket_event": event,
            "ticket_status": _short(self.status, 100),
            "ticket_priority": _short(self.priority, 100),
            "ticket_group": _short(self.group, 500),
            "ticket_type": _short(self.ticket_type, 100),
            "ticket_tags": ",".join(self.tags)[:1000] if self.tags is not None else None,
            "ticket_created_at": _iso(self.created_at),
            "ticket_updated_at": _iso(self.updated_at),
            "ticket_solved": self.solved,
            "ticket_solved_at": _iso(self.solved_at),
        }
        attrs.update(self.extra)
        attrs.update(extra)
        return {k: v for k, v in attrs.items() if v is not None}


@dataclass
class RecordFactory:
    """Builds the ticket records of one request or poll (customer key and receipt time shared)."""

    customer_key: bytes
    received_at: datetime = field(default_factory=utcnow)

    def _base(self, t: Ticket, source_ref: str, text: str, event_time: datetime | None, event: str,
              csat_score: int | None = None, **extra: Any) -> FeedbackRecord:
        tags = [tag[:100] for tag in (t.tags or []) if tag][:50]
        return FeedbackRecord(
            source="ticket",
            channel=t.channel or t.system,
            source_ref=source_ref,
            thread_ref=t.ref,
            customer_ref=customer_ref(t.requester, self.customer_key) if t.requester else None,
            subject=_short(t.subject, 1000),
            text=text[:MAX_TEXT_CHARS],
            tags=tags,
            attributes=t.attributes(event, **extra),
            csat_score=csat_score,
            event_time=event_time or t.updated_at or t.created_at or self.received_at,
            received_at=self.received_at,
        )

    def created(self, t: Ticket, mapped: Mapped) -> None:
        """The ticket itself: subject + description (the customer's first words)."""
        text = html_to_text(t.description) or (t.subject or "").strip()
        if not text:
            mapped.skipped.append("empty_text")
            return
        mapped.records.append(self._base(t, t.ref, text, t.created_at, "created"))

    def comment(self, t: Ticket, comment_id: str | None, body: str | None, created_at: datetime | None,
                mapped: Mapped) -> None:
        """One public customer comment, its own record in the ticket's thread."""
        text = html_to_text(body)
        if not text:
            mapped.skipped.append("empty_text")
            return
        cid = str(comment_id) if comment_id not in (None, "") else text_digest(text)
        mapped.records.append(self._base(t, f"{t.ref}:comment:{cid}", text, created_at, "comment",
                                         comment_id=cid))

    def rating(self, t: Ticket, rating_id: str | None, score: int | None, raw: str, comment: str | None,
               created_at: datetime | None, mapped: Mapped) -> None:
        """A satisfaction rating: ``csat_score`` 1-5 (raw value kept in ``csat_raw``) with its comment."""
        if score is None:
            mapped.skipped.append("rating_not_given")
            return
        said = html_to_text(comment)
        text = said or ""  # no comment: a score-only record (no made-up words for the sentiment to score)
        basis = f"{raw}\n{said or f'Satisfaction rating: {raw}'}"  # as before this was score-only: ids stay
        rid = str(rating_id) if rating_id not in (None, "") else text_digest(basis)
        mapped.records.append(self._base(t, f"{t.ref}:rating:{rid}", text, created_at, "rating", csat_score=score,
                                         rating_id=rid, csat_raw=_short(raw, 100), csat_has_comment=bool(said)))

    def state(self, t: Ticket, version: str, mapped: Mapped) -> None:
        """A state-only change: reaches the tickets table, never the feedback table."""
        parts = [f"{k}={v}" for k, v in (("status", t.status), ("priority", t.priority), ("group", t.group))
                 if v]
        text = f"Ticket {t.ref} state" + (f": {', '.join(parts)}" if parts else "")
        mapped.records.append(self._base(t, f"{t.ref}:state:{version}", text, t.updated_at,
                                         TICKET_STATE_EVENT))


def require_id(value: Any, what: str) -> str:
    """A non-empty id as text, or RecordError('invalid_payload')."""
    if value is None or isinstance(value, dict | list | bool) or str(value).strip() == "":
        raise RecordError("invalid_payload", f"{what} is missing")
    return str(value).strip()[:200]


def obj(value: Any) -> dict[str, Any]:
    """``value`` when it is a JSON object, else an empty one (optional parts of a payload)."""
    return value if isinstance(value, dict) else {}


def as_dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RecordError("invalid_payload", f"{what} must be a JSON object")
    return value


def version_of(t: Ticket, fallback: str) -> str:
    """Version of a state change: the ticket's update time (ms), else the delivery's own id."""
    if t.updated_at is not None:
        return str(int(t.updated_at.timestamp() * 1000))
    return fallback
