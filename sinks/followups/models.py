"""The follow-up tables (migration ``0013_followups``), declared on the warehouse's metadata.

- ``contacts``: one row per feedback item whose customer agreed to be contacted: the address
  encrypted at rest (a Fernet token under ``FEEDBACK_CONTACT_KEY``), never in the clear. Keyed by
  ``feedback_id`` and carrying ``customer_ref``, so ``feedback erase`` and ``feedback purge`` remove it.
- ``followups``: the trail of each follow-up, one row per feedback item (so one ticket at most):
  status ``pending`` -> ``sending`` -> ``created`` (with the ticket id) or ``failed`` (with the error);
  ``unknown`` when a delivery was interrupted after the request left (checked by a person, never resent).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from sinks.warehouse.models import Base


class Contact(Base):
    """A consenting customer's address for one feedback item, encrypted."""

    __tablename__ = "contacts"

    feedback_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_ref: Mapped[str | None] = mapped_column(String(500), index=True)
    address_encrypted: Mapped[str] = mapped_column(Text)
    consented_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class FollowUp(Base):
    """One follow-up of one feedback item. Guarantees: at most one row (so one ticket) per item."""

    __tablename__ = "followups"

    feedback_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    customer_ref: Mapped[str | None] = mapped_column(String(500), index=True)
    target: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), index=True)
    ticket_id: Mapped[str | None] = mapped_column(String(100))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
