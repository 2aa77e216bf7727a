"""The ``tickets`` table: current state of each support ticket, folded from its ticket records.

Every ticket record (``source="ticket"``, ``thread_ref`` ``<system>:ticket:<id>``, ``attributes.ticket_event``; see
:mod:`connectors.tickets.model`) carries the ticket's state as of ``attributes.ticket_updated_at``.
:func:`upsert_ticket_states` folds them in, inside the sink's transaction, so that

- state columns (status, priority, group, type, tags, solved, subject, requester) take the values of
  the newest state seen (``state_at``); an older or re-delivered record never rolls them back, and a
  value a payload did not carry (NULL) keeps the stored one;
- ``solved_at`` is set when a ticket becomes solved (the source's own time when given), cleared when
  it is reopened;
- the CSAT columns hold the latest rating (by rating time), ``primary_category`` the category of the
  ticket's own text (its ``created`` record).

Writing the same records again leaves the table unchanged but for ``written_at``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Index,
    SmallInteger,
    String,
    Table,
    Text,
    and_,
    case,
    func,
    or_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from pipeline import metrics
from pipeline.schema import EnrichedFeedback
from sinks.warehouse.models import Base

TZ = DateTime(timezone=True)
#: Columns that follow the newest state (a NULL in the newer record keeps the stored value).
STATE_COLUMNS = ("system", "ticket_id", "external_key", "subject", "status", "priority", "group_name",
                 "ticket_type", "tags", "is_solved", "customer_ref")
CSAT_COLUMNS = ("csat_score", "csat_raw", "csat_comment", "csat_at")


class TicketState(Base):
    """One row per support ticket (primary key ``ticket_key`` = the records' ``thread_ref``)."""

    __tablename__ = "tickets"

    ticket_key: Mapped[str] = mapped_column(String(300), primary_key=True)
    system: Mapped[str] = mapped_column(String(40))
    ticket_id: Mapped[str] = mapped_column(String(200))
    external_key: Mapped[str | None] = mapped_column(String(100))
    subject: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str | None] = mapped_column(String(100))
    priority: Mapped[str | None] = mapped_column(String(100))
    group_name: Mapped[str | None] = mapped_column(String(500))
    ticket_type: Mapped[str | None] = mapped_column(String(100))
    tags: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    is_solved: Mapped[bool | None] = mapped_column(Boolean)
    solved_at: Mapped[datetime | None] = mapped_column(TZ)
    customer_ref: Mapped[str | None] = mapped_column(String(500))
    primary_category: Mapped[str | None] = mapped_column(String(100))
    csat_score: Mapped[int | None] = mapped_column(SmallInteger)
    csat_raw: Mapped[str | None] = mapped_column(String(100))
    csat_comment: Mapped[str | None] = mapped_column(Text)
    csat_at: Mapped[datetime | None] = mapped_column(TZ)
    created_at: Mapped[datetime | None] = mapped_column(TZ)
    state_at: Mapped[datetime | None] = mapped_column(TZ)
    first_seen_at: Mapped[datetime] = mapped_column(TZ)
    written_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (
        Index("ix_tickets_status", "status"),
        Index("ix_tickets_solved_at", "solved_at"),
        Index("ix_tickets_system", "system"),
        Index("ix_tickets_csat_at", "csat_at"),
    )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def ticket_row(item: EnrichedFeedback, now: datetime) -> dict[str, Any] | None:
    """The ``tickets`` row a ticket record implies, or None for any other record."""
    attrs = item.attributes
    # identity from thread_ref ("<system>:ticket:<id>"): the processor may redact attribute values
    # that look like PII (a long numeric id can pass for a phone number), never thread_ref
    system, sep, ticket_id = (item.thread_ref or "").partition(":ticket:")
    if item.source != "ticket" or not sep or not system or not ticket_id or not attrs.get("ticket_event"):
        return None
    event = attrs.get("ticket_event")
    rating = event == "rating" and item.csat_score is not None
    tags = attrs.get("ticket_tags")
    solved = attrs.get("ticket_solved")
    return {
        "ticket_key": item.thread_ref,
        "system": str(system)[:40],
        "ticket_id": str(ticket_id)[:200],
        "external_key": attrs.get("ticket_key"),
        "subject": item.subject,
        "status": attrs.get("ticket_status"),
        "priority": attrs.get("ticket_priority"),
        "group_name": attrs.get("ticket_group"),
        "ticket_type": attrs.get("ticket_type"),
        "tags": [t for t in tags.split(",") if t] if isinstance(tags, str) else None,
        "is_solved": solved if isinstance(solved, bool) else None,
        "solved_at": _time(attrs.get("ticket_solved_at")),
        "customer_ref": item.customer_ref,
        "primary_category": item.categories[0].name if event == "created" else None,
        "csat_score": item.csat_score if rating else None,
        "csat_raw": attrs.get("csat_raw") if rating else None,
        "csat_comment": item.text if rating and attrs.get("csat_has_comment") else None,
        "csat_at": item.event_time if rating else None,
        "created_at": _time(attrs.get("ticket_created_at")),
        "state_at": _time(attrs.get("ticket_updated_at")) or item.event_time,
        "first_seen_at": now,
        "written_at": now,
    }


def _upsert_stmt(dialect: str) -> Any:
    table = cast(Table, TicketState.__table__)
    stmt = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    new, old = stmt.excluded, table.c
    newer = or_(old.state_at.is_(None), new.state_at >= old.state_at)
    newer_csat = and_(new.csat_at.is_not(None), or_(old.csat_at.is_(None), new.csat_at >= old.csat_at))
    update: dict[str, Any] = {c: case((newer, func.coalesce(new[c], old[c])), else_=old[c]) for c in STATE_COLUMNS}
    update.update({c: case((newer_csat, new[c]), else_=old[c]) for c in CSAT_COLUMNS})
    update["solved_at"] = case(
        (and_(newer, new.is_solved.is_(True)), func.coalesce(new.solved_at, old.solved_at, new.state_at)),
        (and_(newer, new.is_solved.is_(False)), None),
        else_=old.solved_at,
    )
    update["state_at"] = case((newer, new.state_at), else_=old.state_at)
    update["created_at"] = func.coalesce(old.created_at, new.created_at)
    update["primary_category"] = func.coalesce(new.primary_category, old.primary_category)
    update["written_at"] = new.written_at
    return stmt.on_conflict_do_update(index_elements=["ticket_key"], set_=update)


def upsert_ticket_states(conn: Connection, items: Sequence[EnrichedFeedback]) -> int:
    """Fold the ticket records among ``items`` into ``tickets`` (call inside the sink's transaction).

    Rows of one ticket go in successive statements, oldest state first, since one INSERT ... ON
    CONFLICT may not touch a row twice. Returns the number of ticket records applied.
    """
    now = datetime.now(UTC)
    per_ticket: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in items:
        row = ticket_row(item, now)
        if row is not None:
            per_ticket[row["ticket_key"]].append(row)
    if not per_ticket:
        return 0
    for rows in per_ticket.values():
        rows.sort(key=lambda r: r["state_at"])
    stmt = _upsert_stmt(conn.dialect.name)
    depth = max(len(rows) for rows in per_ticket.values())
    applied = 0
    for level in range(depth):
        batch = [rows[level] for rows in per_ticket.values() if len(rows) > level]
        conn.execute(stmt, batch)
        applied += len(batch)
    metrics.WRITTEN.labels("tickets").inc(applied)
    return applied
