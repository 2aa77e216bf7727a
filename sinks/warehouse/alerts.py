"""Warehouse tables of the degrading signals: closed windows, alerts, their history, and the outbox.

Columns mirror :class:`pipeline.signal_schema.SignalWindow` and :class:`pipeline.signal_schema.Alert`.
Migrations: ``migrations/versions/0005_signals_alerts.py``, ``0008_incidents.py`` (incidents).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from sinks.warehouse.models import Base

TZ = DateTime(timezone=True)
ACTIVE_WHERE = "status IN ('open', 'acknowledged')"


class SignalWindowRow(Base):
    """One closed event-time window of one scope, plus the detector's verdict per signal (``detection``).

    Guarantees: one row per (scope, window size, window start); the first emission of a window wins
    (a re-emitted window is never judged twice).
    """

    __tablename__ = "signal_windows"

    window_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    scope_type: Mapped[str] = mapped_column(String(16))
    scope_value: Mapped[str] = mapped_column(String(500))
    window_start: Mapped[datetime] = mapped_column(TZ)
    window_end: Mapped[datetime] = mapped_column(TZ)
    window_seconds: Mapped[int] = mapped_column(Integer)
    volume: Mapped[int] = mapped_column(Integer)
    negative: Mapped[int] = mapped_column(Integer)
    neutral: Mapped[int] = mapped_column(Integer)
    positive: Mapped[int] = mapped_column(Integer)
    negative_share: Mapped[float | None] = mapped_column(Float)
    sentiment_mean: Mapped[float | None] = mapped_column(Float)
    sentiment_std: Mapped[float | None] = mapped_column(Float)
    nps_responses: Mapped[int] = mapped_column(Integer)
    promoters: Mapped[int] = mapped_column(Integer)
    detractors: Mapped[int] = mapped_column(Integer)
    nps: Mapped[float | None] = mapped_column(Float)
    csat_responses: Mapped[int] = mapped_column(Integer)
    csat_mean: Mapped[float | None] = mapped_column(Float)
    csat_std: Mapped[float | None] = mapped_column(Float)
    closed_at: Mapped[datetime] = mapped_column(TZ)
    written_at: Mapped[datetime] = mapped_column(TZ)
    evaluated_at: Mapped[datetime | None] = mapped_column(TZ)
    detection: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    __table_args__ = (
        Index("ux_signal_windows_scope_window", "scope_type", "scope_value", "window_seconds", "window_start",
              unique=True),
        Index("ix_signal_windows_window_start", "window_start"),
    )


class AlertRow(Base):
    """An alert and its lifecycle; at most one active (open/acknowledged) per (signal, scope)."""

    __tablename__ = "alerts"

    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    signal: Mapped[str] = mapped_column(String(50))
    scope_type: Mapped[str] = mapped_column(String(16))
    scope_value: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    first_window_start: Mapped[datetime] = mapped_column(TZ)
    window_start: Mapped[datetime] = mapped_column(TZ)
    window_end: Mapped[datetime] = mapped_column(TZ)
    observed: Mapped[float] = mapped_column(Float)
    expected: Mapped[float] = mapped_column(Float)
    sample_size: Mapped[int] = mapped_column(Integer)
    z_score: Mapped[float | None] = mapped_column(Float)
    opened_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    acknowledged_at: Mapped[datetime | None] = mapped_column(TZ)
    acknowledged_by: Mapped[str | None] = mapped_column(String(500))
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)
    resolved_by: Mapped[str | None] = mapped_column(String(500))
    in_control_streak: Mapped[int] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    # -- incidents (revision 0008_incidents; NULL for alerts opened before it) --------------------------
    incident_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)

    __table_args__ = (
        Index("ux_alerts_active_scope", "signal", "scope_type", "scope_value", unique=True,
              sqlite_where=text(ACTIVE_WHERE), postgresql_where=text(ACTIVE_WHERE)),
        Index("ix_alerts_status_opened", "status", "opened_at"),
    )


class IncidentRow(Base):
    """One problem: the alerts sharing a cause (``alerts.incident_id``), its driver scope and examples.

    Guarantees: ``incident_id`` is a UUIDv5 of the alert that opened it (a replay opens the same
    incident); resolved only when every member alert is resolved, or by an operator.
    """

    __tablename__ = "incidents"

    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    driver_scope_type: Mapped[str] = mapped_column(String(16))
    driver_scope_value: Mapped[str] = mapped_column(String(500))
    signals: Mapped[list[str]] = mapped_column(JSON)
    explained_share: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime] = mapped_column(TZ)
    opened_at: Mapped[datetime] = mapped_column(TZ)
    updated_at: Mapped[datetime] = mapped_column(TZ)
    acknowledged_at: Mapped[datetime | None] = mapped_column(TZ)
    acknowledged_by: Mapped[str | None] = mapped_column(String(500))
    resolved_at: Mapped[datetime | None] = mapped_column(TZ)
    resolved_by: Mapped[str | None] = mapped_column(String(500))
    observed: Mapped[float | None] = mapped_column(Float)
    expected: Mapped[float | None] = mapped_column(Float)
    sample_size: Mapped[int | None] = mapped_column(Integer)
    summary: Mapped[str] = mapped_column(Text)
    examples: Mapped[list[str]] = mapped_column(JSON)

    __table_args__ = (Index("ix_incidents_status_opened", "status", "opened_at"),)


class IncidentHistoryRow(Base):
    """The incident's trail: every state change (detector or operator), with ``notified`` for the outbox."""

    __tablename__ = "incident_history"

    history_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    incident_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("incidents.incident_id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    notified: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_incident_history_incident_at", "incident_id", "at"),
        Index("ix_incident_history_notified", "notified"),
    )


class AlertHistoryRow(Base):
    """Who did what to an alert and when (detector events and operators' ack/resolve/notes).

    ``history_id`` is the event's idempotency key; ``notified`` says whether the channels' outbox
    rows were created for it.
    """

    __tablename__ = "alert_history"

    history_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid, ForeignKey("alerts.alert_id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(TZ)
    actor: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    window_start: Mapped[datetime | None] = mapped_column(TZ)
    observed: Mapped[float | None] = mapped_column(Float)
    expected: Mapped[float | None] = mapped_column(Float)
    summary: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    notified: Mapped[bool] = mapped_column(Boolean)

    __table_args__ = (
        Index("ix_alert_history_alert_at", "alert_id", "at"),
        Index("ix_alert_history_notified", "notified"),
    )


class AlertDeliveryRow(Base):
    """The outbox: one row per (alert event, channel); a channel delivers its rows in event order."""

    __tablename__ = "alert_deliveries"

    event_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    alert_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event: Mapped[str] = mapped_column(String(16))
    event_at: Mapped[datetime] = mapped_column(TZ)
    window_start: Mapped[datetime | None] = mapped_column(TZ)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime] = mapped_column(TZ)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(TZ)
    delivered_at: Mapped[datetime | None] = mapped_column(TZ)

    __table_args__ = (Index("ix_alert_deliveries_due", "channel", "status", "next_attempt_at"),)
