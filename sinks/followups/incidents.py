"""The incident rule: the consenting customers among an open incident's example comments get a follow-up.

An incident (written by the alert sink to the warehouse's ``incidents`` table) names its driver scope,
its start in event time and up to five example comments: redacted negative texts of the driver scope
since the start, each cut to 300 characters. Its *example items* are the feedback rows of that scope,
from ``started_at`` on, whose comment (trimmed, cut the same way) is one of the examples. Those whose
customer agreed to be contacted (a row in ``contacts``) and that have no follow-up yet get a
``pending`` row with the reason ``incident:<incident id>``; the follow-up sink sends it like any other.

Read from the warehouse tables with SQLAlchemy Core: this module imports no other sink's code.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, func, insert, select, true

from sinks.followups.models import Contact, FollowUp
from sinks.warehouse.alerts import IncidentRow
from sinks.warehouse.models import Feedback, FeedbackCategory

#: The ``followups.reason`` of an incident's follow-up starts with this (then ``:<incident id>``).
REASON = "incident"
#: How much of a comment an incident's example keeps (sinks.alerts.incidents.examples).
EXAMPLE_CHARS = 300
ACTIVE = ("open", "acknowledged")

F = Feedback.__table__
INC = IncidentRow.__table__
C = Contact.__table__
FU = FollowUp.__table__


def _in_scope(kind: str, value: str) -> Any:
    """The feedback rows of an incident's driver scope (``overall`` and themes: every row)."""
    if kind == "source":
        return F.c.source == value
    if kind == "channel":
        return F.c.channel == value
    if kind == "product":
        return F.c.product == value
    if kind == "category":
        return exists().where(and_(FeedbackCategory.__table__.c.feedback_id == F.c.feedback_id,
                                   FeedbackCategory.__table__.c.category == value))
    return true()


def example_items(engine: Engine, limit: int) -> list[tuple[uuid.UUID, uuid.UUID, str | None]]:
    """``(incident_id, feedback_id, customer_ref)`` of each active incident's example items with a
    contact and no follow-up yet, at most ``limit`` per incident (the earliest first)."""
    found = []
    with engine.connect() as conn:
        active = conn.execute(select(INC.c.incident_id, INC.c.driver_scope_type, INC.c.driver_scope_value,
                                     INC.c.started_at, INC.c.examples).where(INC.c.status.in_(ACTIVE)))
        for inc in list(active):
            texts = sorted({str(e).strip()[:EXAMPLE_CHARS] for e in inc.examples or [] if str(e).strip()})
            if not texts:
                continue
            comment = func.substr(func.trim(F.c.text), 1, EXAMPLE_CHARS)
            stmt = (select(F.c.feedback_id, F.c.customer_ref)
                    .join(C, C.c.feedback_id == F.c.feedback_id)
                    .where(F.c.event_time >= inc.started_at, comment.in_(texts),
                           _in_scope(inc.driver_scope_type, inc.driver_scope_value),
                           ~exists().where(FU.c.feedback_id == F.c.feedback_id))
                    .order_by(F.c.event_time, F.c.feedback_id).limit(limit))
            found += [(inc.incident_id, row.feedback_id, row.customer_ref) for row in conn.execute(stmt)]
    return found


def add_incident_followups(engine: Engine, target: str, limit: int) -> int:
    """Add a ``pending`` follow-up for each new example item (see the module); returns how many.
    Idempotent: an item already followed up (for any reason) is skipped, so one ticket per item."""
    now = datetime.now(UTC)
    rows, seen = [], set()
    for incident_id, feedback_id, customer in example_items(engine, limit):
        if feedback_id in seen:  # an item among two incidents' examples: one follow-up
            continue
        seen.add(feedback_id)
        rows.append({"feedback_id": feedback_id, "customer_ref": customer, "target": target,
                     "reason": f"{REASON}:{incident_id}", "status": "pending", "attempts": 0,
                     "created_at": now, "updated_at": now})
    if rows:
        with engine.begin() as conn:
            taken = set(conn.execute(select(FU.c.feedback_id).where(FU.c.feedback_id.in_(seen))).scalars())
            rows = [r for r in rows if r["feedback_id"] not in taken]
            if rows:
                conn.execute(insert(FollowUp), rows)
    return len(rows)


def pending(engine: Engine) -> Iterator[tuple[Any, str, str]]:
    """``(feedback row, sealed contact, reason)`` of every pending follow-up whose item and contact
    the warehouse holds, the oldest first."""
    with engine.connect() as conn:
        rows = list(conn.execute(
            select(F.c.feedback_id, F.c.nps_score, F.c.csat_score, F.c.text, F.c.channel, F.c.source,
                   F.c.event_time, C.c.address_encrypted, FU.c.reason)
            .join(C, C.c.feedback_id == FU.c.feedback_id).join(F, F.c.feedback_id == FU.c.feedback_id)
            .where(FU.c.status == "pending").order_by(FU.c.created_at, FU.c.feedback_id)))
    for row in rows:
        yield row, row.address_encrypted, row.reason
