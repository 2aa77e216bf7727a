"""Warehouse access of the alert sink and the ``feedback alerts`` commands (SQLite and PostgreSQL).

Every function takes an open connection inside the caller's transaction, so a window, its verdict,
the alert change and the history row commit together or not at all.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, and_, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from sinks.alerts.detector import Entry, WindowStats
from sinks.alerts.lifecycle import ACTIVE, AlertState
from sinks.warehouse.alerts import AlertDeliveryRow, AlertHistoryRow, AlertRow, IncidentRow, SignalWindowRow
from sinks.warehouse.db import migrate

W: Table = SignalWindowRow.__table__  # type: ignore[assignment]
A: Table = AlertRow.__table__  # type: ignore[assignment]
H: Table = AlertHistoryRow.__table__  # type: ignore[assignment]
D: Table = AlertDeliveryRow.__table__  # type: ignore[assignment]


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything here is UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _insert_ignore(conn: Connection, table: Any, rows: Sequence[dict[str, Any]] | dict[str, Any]) -> int:
    """Insert unless a unique key is taken; returns how many rows were new (for a single row)."""
    dialect = conn.dialect.name
    stmt = (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)).on_conflict_do_nothing()
    if isinstance(rows, dict):  # rowcount is unreliable here (psycopg says -1): ask for the new key
        return len(conn.execute(stmt.returning(*table.primary_key.columns), rows).all())
    conn.execute(stmt, list(rows))
    return len(rows)


def migrate_with_retry(engine: Any, attempts: int = 10) -> None:
    """Migrate; another process migrating the same warehouse at the same moment is waited out."""
    for attempt in range(1, attempts + 1):
        try:
            migrate(engine)
            return
        except DBAPIError:
            if attempt == attempts:
                raise
            time.sleep(min(5.0, 0.5 * attempt))


# -- windows -----------------------------------------------------------------------------------------
def window_row(w: Any, now: datetime, detection: dict[str, Any]) -> dict[str, Any]:
    """The ``signal_windows`` row of a closed window and its verdict."""
    row = w.model_dump(exclude={"schema_version"})
    row.update(written_at=now, evaluated_at=now, detection=detection)
    return row


def existing_windows(conn: Connection, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these windows are stored already."""
    found: set[uuid.UUID] = set()
    for i in range(0, len(ids), 500):
        found.update(conn.execute(select(W.c.window_id).where(W.c.window_id.in_(ids[i:i + 500]))).scalars())
    return found


def insert_windows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        _insert_ignore(conn, W, rows)


def stats_of_row(r: Any) -> WindowStats:
    return WindowStats(
        start=utc(r.window_start).timestamp(), seconds=r.window_seconds, volume=r.volume,  # type: ignore[union-attr]
        negative=r.negative, sentiment_mean=r.sentiment_mean, sentiment_std=r.sentiment_std,
        nps_responses=r.nps_responses, promoters=r.promoters, detractors=r.detractors,
        csat_responses=r.csat_responses, csat_mean=r.csat_mean, csat_std=r.csat_std)


def load_history(conn: Connection, scope_type: str, scope_value: str, seconds: int, since: datetime) -> list[Entry]:
    """The judged windows of one scope and window size since ``since``, oldest first."""
    rows = conn.execute(
        select(W).where(W.c.scope_type == scope_type, W.c.scope_value == scope_value, W.c.window_seconds == seconds,
                        W.c.window_start >= since, W.c.evaluated_at.is_not(None))
        .order_by(W.c.window_start))
    return [Entry(stats_of_row(r), dict(r.detection or {})) for r in rows]


# -- alerts ------------------------------------------------------------------------------------------
def _state(r: Any) -> AlertState:
    return AlertState(
        alert_id=r.alert_id, signal=r.signal, scope_type=r.scope_type, scope_value=r.scope_value, status=r.status,
        severity=r.severity, first_window_start=utc(r.first_window_start),  # type: ignore[arg-type]
        window_start=utc(r.window_start), window_end=utc(r.window_end),  # type: ignore[arg-type]
        observed=r.observed, expected=r.expected, sample_size=r.sample_size, z_score=r.z_score,
        opened_at=utc(r.opened_at), updated_at=utc(r.updated_at), summary=r.summary,  # type: ignore[arg-type]
        resolved_at=utc(r.resolved_at), in_control_streak=r.in_control_streak,
        acknowledged_at=utc(r.acknowledged_at), acknowledged_by=r.acknowledged_by,
        incident_id=getattr(r, "incident_id", None))


def all_active_alerts(conn: Connection) -> dict[tuple[str, str, str], AlertState]:
    """Every open or acknowledged alert, by (signal, scope_type, scope_value)."""
    rows = conn.execute(select(A).where(A.c.status.in_(ACTIVE)))
    return {(r.signal, r.scope_type, r.scope_value): _state(r) for r in rows}


def get_alert(conn: Connection, alert_id: uuid.UUID) -> AlertState | None:
    row = conn.execute(select(A).where(A.c.alert_id == alert_id)).first()
    return _state(row) if row is not None else None


_DETECTOR_FIELDS = ("severity", "window_start", "window_end", "observed", "expected", "sample_size", "z_score",
                    "updated_at", "summary", "in_control_streak")


def save_alert(conn: Connection, alert: AlertState, event: str | None) -> bool:
    """Insert a new alert or apply the detector's change to an active one; False if nothing changed.

    An update only touches an alert that is still active, so an operator's resolve always wins.
    """
    if event == "opened":
        row = {f: getattr(alert, f) for f in (c.name for c in A.columns) if hasattr(alert, f)}
        row["resolved_by"] = None
        return _insert_ignore(conn, A, row) == 1
    values = {f: getattr(alert, f) for f in _DETECTOR_FIELDS}
    if event == "resolved":
        values.update(status="resolved", resolved_at=alert.resolved_at, resolved_by="detector")
    result = conn.execute(update(A).where(A.c.alert_id == alert.alert_id, A.c.status.in_(ACTIVE)).values(**values))
    return bool(result.rowcount)


def add_history(conn: Connection, history_id: uuid.UUID, alert: AlertState, action: str, actor: str,
                at: datetime, note: str | None = None) -> bool:
    return _insert_ignore(conn, H, {
        "history_id": history_id, "alert_id": alert.alert_id, "at": at, "actor": actor, "action": action,
        "status": alert.status, "severity": alert.severity, "window_start": alert.window_start,
        "observed": alert.observed, "expected": alert.expected, "summary": alert.summary, "note": note,
        "notified": False}) == 1


def history(conn: Connection, alert_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = conn.execute(select(H).where(H.c.alert_id == alert_id).order_by(H.c.at, H.c.window_start))
    return [dict(r._mapping) for r in rows]


def list_alerts(conn: Connection, status: str | None = None, limit: int = 200) -> list[AlertState]:
    stmt = select(A).order_by(A.c.opened_at.desc()).limit(limit)
    if status == "active":
        stmt = stmt.where(A.c.status.in_(ACTIVE))
    elif status:
        stmt = stmt.where(A.c.status == status)
    return [_state(r) for r in conn.execute(stmt)]


def operator_action(conn: Connection, alert_id: uuid.UUID, action: str, by: str, note: str | None,
                    now: datetime) -> AlertState:
    """Acknowledge, resolve or annotate an alert, with a history row (who, when, what)."""
    alert = get_alert(conn, alert_id)
    if alert is None:
        raise LookupError(f"no alert {alert_id}")
    if action in ("acknowledged", "resolved") and not alert.active:
        raise ValueError(f"alert {alert_id} is already {alert.status}")
    values: dict[str, Any] = {"updated_at": now}
    if action == "acknowledged":
        values.update(status="acknowledged", acknowledged_at=now, acknowledged_by=by)
    elif action == "resolved":
        values.update(status="resolved", resolved_at=now, resolved_by=by)
    conn.execute(update(A).where(A.c.alert_id == alert_id).values(**values))
    updated = get_alert(conn, alert_id)
    assert updated is not None
    add_history(conn, uuid.uuid4(), updated, action, by, now, note)
    return updated


# -- notification outbox -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingEvent:
    history_id: uuid.UUID
    action: str
    actor: str
    at: datetime
    note: str | None
    alert: AlertState


def pending_events(conn: Connection, limit: int = 500) -> list[PendingEvent]:
    rows = conn.execute(select(H, A.c.status.label("alert_status")).join(A, A.c.alert_id == H.c.alert_id)
                        .where(H.c.notified.is_(False)).order_by(H.c.at, H.c.window_start).limit(limit))
    out = []
    for r in rows:
        alert = get_alert(conn, r.alert_id)
        if alert is None:
            continue
        # The event as it was: the history row's figures, the alert's identity.
        alert.status, alert.severity, alert.summary = r.status, r.severity, r.summary
        alert.observed = r.observed if r.observed is not None else alert.observed
        alert.expected = r.expected if r.expected is not None else alert.expected
        alert.window_start = utc(r.window_start) or alert.window_start
        out.append(PendingEvent(r.history_id, r.action, r.actor, utc(r.at), r.note, alert))  # type: ignore[arg-type]
    return out


def enqueue(conn: Connection, event: PendingEvent, payload: dict[str, Any], channels: Iterable[str],
            now: datetime) -> None:
    rows = [{"event_id": event.history_id, "channel": ch, "alert_id": event.alert.alert_id, "event": event.action,
             "event_at": event.at, "window_start": event.alert.window_start, "payload": payload, "status": "pending",
             "attempts": 0, "next_attempt_at": now, "last_error": None, "created_at": now, "delivered_at": None}
            for ch in channels]
    if rows:
        _insert_ignore(conn, D, rows)
    conn.execute(update(H).where(H.c.history_id == event.history_id).values(notified=True))


def enqueue_incident(conn: Connection, history_id: uuid.UUID, incident: Any, channels: Iterable[str],
                     now: datetime) -> None:
    """Outbox rows of one incident event (``alert_id`` holds the incident id; the payload is the incident)."""
    payload = incident.model_dump(mode="json")
    rows = [{"event_id": history_id, "channel": ch, "alert_id": incident.incident_id, "event": incident.event,
             "event_at": incident.event_at or now, "window_start": None, "payload": payload, "status": "pending",
             "attempts": 0, "next_attempt_at": now, "last_error": None, "created_at": now, "delivered_at": None}
            for ch in channels]
    if rows:
        _insert_ignore(conn, D, rows)


def pending_deliveries(conn: Connection, channel: str, limit: int = 50) -> list[Any]:
    """A channel's undelivered rows, oldest event first (whether or not their retry is due yet)."""
    return list(conn.execute(select(D).where(D.c.channel == channel, D.c.status == "pending")
                             .order_by(D.c.event_at, D.c.window_start, D.c.event_id).limit(limit)))


def mark_delivery(conn: Connection, event_id: uuid.UUID, channel: str, status: str, now: datetime,
                  error: str | None = None, retry_at: datetime | None = None) -> None:
    key = and_(D.c.event_id == event_id, D.c.channel == channel)
    values: dict[str, Any] = {"status": status, "attempts": D.c.attempts + 1, "last_error": error}
    if status == "delivered":
        values["delivered_at"] = now
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    conn.execute(update(D).where(key).values(**values))


def pending_counts(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(D.c.channel, func.count()).where(D.c.status == "pending").group_by(D.c.channel))
    return {ch: int(n) for ch, n in rows}


def deliveries(conn: Connection, alert_id: uuid.UUID | None = None) -> list[dict[str, Any]]:
    stmt = select(D).order_by(D.c.event_at, D.c.window_start)
    if alert_id is not None:
        stmt = stmt.where(D.c.alert_id == alert_id)
    return [dict(r._mapping) for r in conn.execute(stmt)]


# -- gauges ----------------------------------------------------------------------------------------------
def alert_gauge_rows(conn: Connection) -> list[tuple[str, str, str, str, int]]:
    """(signal, scope_type, scope_value, severity, active) of the latest alert of every (signal, scope)."""
    latest = (select(A.c.signal, A.c.scope_type, A.c.scope_value, func.max(A.c.opened_at).label("opened"))
              .group_by(A.c.signal, A.c.scope_type, A.c.scope_value).subquery())
    rows = conn.execute(select(A.c.signal, A.c.scope_type, A.c.scope_value, A.c.severity, A.c.status).join(
        latest, and_(A.c.signal == latest.c.signal, A.c.scope_type == latest.c.scope_type,
                     A.c.scope_value == latest.c.scope_value, A.c.opened_at == latest.c.opened)))
    return [(r.signal, r.scope_type, r.scope_value, r.severity, int(r.status in ACTIVE)) for r in rows]


def open_incident_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """(severity, status) -> how many incidents are open or acknowledged."""
    inc: Table = IncidentRow.__table__  # type: ignore[assignment]
    rows = conn.execute(select(inc.c.severity, inc.c.status, func.count()).where(inc.c.status.in_(ACTIVE))
                        .group_by(inc.c.severity, inc.c.status))
    return {(str(sev), str(status)): int(n) for sev, status, n in rows}
