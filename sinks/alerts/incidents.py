"""Incidents: alerts that share a cause become one incident that names its driver.

When an alert opens, the negative responses *in excess* of each scope's baseline are summed over the
alert's out-of-control period (from the event time its run started, :mod:`sinks.alerts.cusum`, to
its window's end), for every scope with windows of the same size:

    excess(scope) = sum over windows (negatives - assessed responses x p0)

The **driver** is the most specific scope (category or product, then channel, then source, then
overall) whose excess is at least half of the alert's own scope's excess; ``explained_share`` is the
driver's excess over the excess overall ("delivery explains 85 % of the rise in negative share
overall"), clamped to [0, 1] (scopes overlap: a record counts in its source, channel, categories).

The alert then joins the active incident with that driver; or re-drives an active incident whose
driver is broader and which the new driver explains at least half of; or opens a new incident (its
id a UUIDv5 of the alert, so a replay opens the same one). An incident is resolved when every member
alert is resolved (or by an operator); an alert of the same driver whose run starts within a day of
its last out-of-control window reopens it (a flapping problem stays one incident). Each state change
is a row in ``incident_history`` that the dispatcher delivers to the channels once: opened,
reopened, escalated, acknowledged, resolved, note.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, func, select, update

from pipeline.signal_schema import Incident
from sinks.alerts.evidence import Excess, Scope, describe, examples, excess_by_scope
from sinks.alerts.lifecycle import ACTIVE, AlertState
from sinks.warehouse.alerts import AlertRow, IncidentHistoryRow, IncidentRow

INCIDENT_NAMESPACE = uuid.UUID("6c1f2b8e-93a4-5d0e-b7c2-4f8e1d2a6b90")
#: How specific a scope is: the driver is the most specific scope that explains the shift.
RANK = {"overall": 0, "source": 1, "channel": 2, "category": 3, "product": 3, "theme": 3}
#: A scope explains a shift when its excess is at least this share of the other's.
EXPLAINS = 0.5
_SEVERITY = {"info": 0, "warning": 1, "critical": 2}
#: Events of one batch share a time: this is their order (an incident opens before it escalates).
_ORDER = {"opened": 0, "reopened": 1, "updated": 2, "escalated": 3, "acknowledged": 4, "note": 5, "resolved": 6}
#: An alert of the same driver opening within this long (event time) of a resolved incident reopens it.
REOPEN = timedelta(hours=24)

INC: Table = IncidentRow.__table__  # type: ignore[assignment]
IH: Table = IncidentHistoryRow.__table__  # type: ignore[assignment]
A: Table = AlertRow.__table__  # type: ignore[assignment]


@dataclass
class Opened:
    """An alert opened in this batch, with where its run started in event time."""

    alert: AlertState
    started_at: datetime
    window_seconds: int


@dataclass
class Driver:
    scope: Scope
    explained_share: float | None
    figures: Excess = field(default_factory=Excess)


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def choose_driver(excess: dict[Scope, Excess], alert_scope: Scope) -> Driver:
    """The most specific scope whose excess is at least half the alert scope's (pure; see the module)."""
    own = excess.get(alert_scope)
    reference = own.excess if own is not None and own.excess > 0 else 0.0
    best = alert_scope
    if reference > 0:
        candidates = [(RANK.get(s[0], 0), e.excess, s) for s, e in excess.items()
                      if RANK.get(s[0], 0) > RANK.get(alert_scope[0], 0) and e.excess >= EXPLAINS * reference]
        if candidates:
            best = max(candidates)[2]
    overall = excess.get(("overall", "all"))
    chosen = excess.get(best, Excess())
    share = None
    if overall is not None and overall.excess > 0:
        share = min(1.0, max(0.0, chosen.excess / overall.excess))
    return Driver(best, share, chosen)


def _active_incidents(conn: Connection) -> list[Any]:
    return list(conn.execute(select(INC).where(INC.c.status.in_(ACTIVE), INC.c.kind == "signal")))


def _history(conn: Connection, incident_id: uuid.UUID, action: str, actor: str, at: datetime,
             note: str | None = None, key: str | None = None) -> None:
    row = conn.execute(select(INC).where(INC.c.incident_id == incident_id)).one()
    hid = uuid.uuid5(incident_id, key) if key else uuid.uuid4()
    if conn.execute(select(IH.c.history_id).where(IH.c.history_id == hid)).first() is not None:
        return
    at = at + timedelta(microseconds=_ORDER.get(action, 9))  # the outbox delivers in this order
    conn.execute(IH.insert().values(history_id=hid, incident_id=incident_id, at=at, actor=actor, action=action,
                                    status=row.status, severity=row.severity, summary=row.summary, note=note,
                                    notified=False))


def _members(conn: Connection, incident_id: uuid.UUID) -> list[Any]:
    return list(conn.execute(select(A.c.alert_id, A.c.signal, A.c.status, A.c.severity, A.c.window_start,
                                    A.c.window_end).where(A.c.incident_id == incident_id)))


def fill_missing_examples(conn: Connection, now: datetime, within: timedelta = timedelta(days=1)) -> int:
    """Give the incidents changed in the last ``within`` that have fewer than 3 examples the comments the
    warehouse holds now; returns how many changed. The alert sink can judge a window before the warehouse
    sink has stored that window's feedback (a backlog drains faster through the signals than into SQL),
    so an incident may open, and even resolve, before its examples exist."""
    rows = conn.execute(select(INC.c.incident_id, INC.c.driver_scope_type, INC.c.driver_scope_value,
                               INC.c.started_at, INC.c.examples).where(
        INC.c.kind == "signal", INC.c.updated_at >= now - within)).all()
    filled = 0
    for row in rows:
        have = list(row.examples or [])
        members = _members(conn, row.incident_id) if len(have) < 3 else []
        if not members:
            continue
        end = max(utc(m.window_end) or now for m in members)
        found = examples(conn, (row.driver_scope_type, row.driver_scope_value), utc(row.started_at) or now, end)
        if len(found) > len(have):
            conn.execute(update(INC).where(INC.c.incident_id == row.incident_id).values(examples=found))
            filled += 1
    return filled


def _refresh(conn: Connection, incident_id: uuid.UUID, scope: Scope | None, now: datetime) -> None:
    """Recompute an incident's signals, severity, driver figures, summary and examples after a change.

    The figures span the incident: from its start to the latest member window's end, on the window
    size of its members.
    """
    inc = conn.execute(select(INC).where(INC.c.incident_id == incident_id)).one()
    members = _members(conn, incident_id)
    severity = max((m.severity for m in members), key=lambda s: _SEVERITY.get(s, 0), default=inc.severity)
    values: dict[str, Any] = {"signals": sorted({m.signal for m in members}), "severity": severity,
                              "updated_at": now}
    started = utc(inc.started_at) or now
    scope = scope or (inc.driver_scope_type, inc.driver_scope_value)
    if members:
        latest = max(members, key=lambda m: utc(m.window_end))  # type: ignore[arg-type,return-value]
        end = utc(latest.window_end) or now
        excess = excess_by_scope(conn, started, end)
        figures = excess.get(scope, Excess())
        overall = excess.get(("overall", "all"))
        share = min(1.0, max(0.0, figures.excess / overall.excess)) if overall and overall.excess > 0 else None
        values.update(driver_scope_type=scope[0], driver_scope_value=scope[1], explained_share=share,
                      observed=figures.share, expected=figures.baseline, sample_size=figures.responses,
                      summary=describe(scope, figures, share, started))
        if len(inc.examples or []) < 3:
            values["examples"] = examples(conn, scope, started, end) or list(inc.examples or [])
    conn.execute(update(INC).where(INC.c.incident_id == incident_id).values(**values))
    if _SEVERITY.get(severity, 0) > _SEVERITY.get(inc.severity, 0):
        _history(conn, incident_id, "escalated", "detector", now, key=f"escalated|{severity}")


def _match(conn: Connection, opened: Opened, driver: Driver,
           excess: dict[Scope, Excess]) -> tuple[uuid.UUID | None, bool]:
    """The active incident a new alert belongs to (and whether its driver changes), or None.

    Joined: the incident has the same driver; or its driver, no broader than the alert's scope,
    explains at least half of the alert scope's excess over the incident's span (or the alert's scope
    has no excess negatives at all, e.g. a mean-sentiment alert, and one incident is active).
    Re-driven: the new driver is more specific than the incident's and explains half of its excess.
    """
    a = opened.alert
    scope = (a.scope_type, a.scope_value)
    active = _active_incidents(conn)
    for inc in active:
        current = (inc.driver_scope_type, inc.driver_scope_value)
        if current == driver.scope:
            return inc.incident_id, False
        mine, theirs = excess.get(driver.scope), excess.get(current)
        if (RANK.get(current[0], 0) < RANK.get(driver.scope[0], 0) and mine is not None and theirs is not None
                and theirs.excess > 0 and mine.excess >= EXPLAINS * theirs.excess):
            return inc.incident_id, True
    for inc in active:
        current = (inc.driver_scope_type, inc.driver_scope_value)
        if RANK.get(current[0], 0) < RANK.get(scope[0], 0):
            continue
        start = min(utc(inc.started_at) or opened.started_at, opened.started_at)
        span = excess_by_scope(conn, start, a.window_end)
        own, theirs = span.get(scope), span.get(current)
        if own is not None and theirs is not None and own.excess > 0 and theirs.excess >= EXPLAINS * own.excess:
            return inc.incident_id, False
    if len(active) == 1 and (excess.get(scope) is None or excess[scope].excess <= 0):
        return active[0].incident_id, False
    return _recent(conn, driver.scope, opened.started_at), False


def _recent(conn: Connection, driver: Scope, started: datetime) -> uuid.UUID | None:
    """A detector-resolved incident of the same driver whose alerts were out within ``REOPEN`` of
    ``started`` (event time): the same problem flapping back, reopened rather than a new incident."""
    rows = conn.execute(select(INC.c.incident_id, func.max(A.c.window_end).label("last")).join(
        A, A.c.incident_id == INC.c.incident_id).where(
        INC.c.kind == "signal", INC.c.status == "resolved", INC.c.resolved_by == "detector",
        INC.c.driver_scope_type == driver[0], INC.c.driver_scope_value == driver[1]).group_by(INC.c.incident_id))
    for r in rows:
        last = utc(r.last)
        if last is not None and last >= started - REOPEN:
            return r.incident_id
    return None


def attach(conn: Connection, opened: Opened, now: datetime) -> uuid.UUID:
    """Put a newly opened alert into its incident (joined, re-driven or new); returns the incident id."""
    a = opened.alert
    excess = excess_by_scope(conn, opened.started_at, a.window_end)
    driver = choose_driver(excess, (a.scope_type, a.scope_value))
    target, redrive = _match(conn, opened, driver, excess)
    if target is None:
        target = uuid.uuid5(INCIDENT_NAMESPACE, str(a.alert_id))
        if conn.execute(select(INC.c.incident_id).where(INC.c.incident_id == target)).first() is not None:
            conn.execute(update(A).where(A.c.alert_id == a.alert_id).values(incident_id=target))
            return target  # opened by an earlier run of the same windows
        conn.execute(INC.insert().values(
            incident_id=target, kind="signal", status="open", severity=a.severity,
            driver_scope_type=driver.scope[0], driver_scope_value=driver.scope[1], signals=[a.signal],
            explained_share=driver.explained_share, started_at=opened.started_at, opened_at=now,
            updated_at=now, examples=[], summary=describe(driver.scope, driver.figures, driver.explained_share,
                                                          opened.started_at)))
        conn.execute(update(A).where(A.c.alert_id == a.alert_id).values(incident_id=target))
        _refresh(conn, target, driver.scope, now)
        _history(conn, target, "opened", "detector", now, key="opened")
        return target
    conn.execute(update(A).where(A.c.alert_id == a.alert_id).values(incident_id=target))
    inc = conn.execute(select(INC).where(INC.c.incident_id == target)).one()
    if inc.status == "resolved":  # the same problem back within a day: the incident reopens
        conn.execute(update(INC).where(INC.c.incident_id == target).values(
            status="open", resolved_at=None, resolved_by=None, updated_at=now))
        _history(conn, target, "reopened", "detector", now, key=f"reopened|{a.alert_id}")
    if opened.started_at < (utc(inc.started_at) or opened.started_at):
        conn.execute(update(INC).where(INC.c.incident_id == target).values(started_at=opened.started_at))
    _refresh(conn, target, driver.scope if redrive else None, now)
    if redrive:
        _history(conn, target, "updated", "detector", now, key=f"driver|{driver.scope[0]}|{driver.scope[1]}")
    return target


def settle(conn: Connection, alert_ids: Iterable[uuid.UUID], now: datetime) -> list[uuid.UUID]:
    """After member alerts changed: resolve incidents whose members are all resolved; refresh the rest."""
    ids = {r.incident_id for r in conn.execute(select(A.c.incident_id).where(A.c.alert_id.in_(list(alert_ids))))
           if r.incident_id is not None}
    resolved = []
    for iid in sorted(ids, key=str):
        inc = conn.execute(select(INC).where(INC.c.incident_id == iid)).one()
        if inc.status not in ACTIVE:
            continue
        members = _members(conn, iid)
        if members and all(m.status not in ACTIVE for m in members):
            conn.execute(update(INC).where(INC.c.incident_id == iid).values(
                status="resolved", resolved_at=now, resolved_by="detector", updated_at=now))
            last = max(str(utc(m.window_end)) for m in members)  # one resolution per episode
            _history(conn, iid, "resolved", "detector", now, key=f"resolved|{last}")
            resolved.append(iid)
        else:
            _refresh(conn, iid, None, now)
    return resolved


def incident_of(row: Any, members: list[uuid.UUID]) -> Incident:
    return Incident(
        incident_id=row.incident_id, kind=row.kind, status=row.status, severity=row.severity,
        driver_scope_type=row.driver_scope_type, driver_scope_value=row.driver_scope_value,
        signals=list(row.signals or []), explained_share=row.explained_share, started_at=utc(row.started_at),
        opened_at=utc(row.opened_at), updated_at=utc(row.updated_at), resolved_at=utc(row.resolved_at),
        acknowledged_at=utc(row.acknowledged_at), acknowledged_by=row.acknowledged_by, observed=row.observed,
        expected=row.expected, sample_size=row.sample_size, summary=row.summary[:4000], alerts=members,
        examples=[e[:1000] for e in (row.examples or [])])


def get(conn: Connection, incident_id: uuid.UUID) -> Incident | None:
    row = conn.execute(select(INC).where(INC.c.incident_id == incident_id)).first()
    return None if row is None else incident_of(row, [m.alert_id for m in _members(conn, incident_id)])


def list_incidents(conn: Connection, status: str | None = None, limit: int = 200) -> list[Incident]:
    stmt = select(INC).order_by(INC.c.opened_at.desc()).limit(limit)
    if status == "active":
        stmt = stmt.where(INC.c.status.in_(ACTIVE))
    elif status:
        stmt = stmt.where(INC.c.status == status)
    rows = list(conn.execute(stmt))
    members: dict[uuid.UUID, list[uuid.UUID]] = {}
    if rows:
        for m in conn.execute(select(A.c.incident_id, A.c.alert_id).where(
                A.c.incident_id.in_([r.incident_id for r in rows])).order_by(A.c.opened_at)):
            members.setdefault(m.incident_id, []).append(m.alert_id)
    return [incident_of(r, members.get(r.incident_id, [])) for r in rows]


def operator_action(conn: Connection, incident_id: uuid.UUID, action: str, by: str, note: str | None,
                    now: datetime) -> Incident:
    """Acknowledge, resolve or annotate an incident; acknowledging or resolving applies to its active alerts."""
    inc = get(conn, incident_id)
    if inc is None:
        raise LookupError(f"no incident {incident_id}")
    if action in ("acknowledged", "resolved") and inc.status not in ACTIVE:
        raise ValueError(f"incident {incident_id} is already {inc.status}")
    values: dict[str, Any] = {"updated_at": now}
    alert_values: dict[str, Any] = {"updated_at": now}
    if action == "acknowledged":
        values.update(status="acknowledged", acknowledged_at=now, acknowledged_by=by)
        alert_values.update(status="acknowledged", acknowledged_at=now, acknowledged_by=by)
    elif action == "resolved":
        values.update(status="resolved", resolved_at=now, resolved_by=by)
        alert_values.update(status="resolved", resolved_at=now, resolved_by=by)
    conn.execute(update(INC).where(INC.c.incident_id == incident_id).values(**values))
    if action != "note":
        conn.execute(update(A).where(A.c.incident_id == incident_id, A.c.status.in_(ACTIVE)).values(**alert_values))
    _history(conn, incident_id, action, by, now, note)
    updated = get(conn, incident_id)
    assert updated is not None
    return updated


def history(conn: Connection, incident_id: uuid.UUID) -> list[dict[str, Any]]:
    rows = conn.execute(select(IH).where(IH.c.incident_id == incident_id).order_by(IH.c.at))
    return sorted((dict(r._mapping) for r in rows), key=lambda h: (utc(h["at"]), _ORDER.get(h["action"], 9)))


def pending_events(conn: Connection, limit: int = 500) -> list[tuple[Any, Incident]]:
    """Incident history rows not yet handed to the outbox, with the incident as it is now."""
    rows = sorted(conn.execute(select(IH).where(IH.c.notified.is_(False)).order_by(IH.c.at).limit(limit)),
                  key=lambda r: (utc(r.at), _ORDER.get(r.action, 9)))
    out = []
    for r in rows:
        inc = get(conn, r.incident_id)
        if inc is not None:
            inc = inc.model_copy(update={"status": r.status, "severity": r.severity, "event": r.action,
                                         "event_id": r.history_id, "event_at": utc(r.at), "actor": r.actor,
                                         "note": r.note})
            out.append((r, inc))
    return out


def mark_notified(conn: Connection, history_id: uuid.UUID) -> None:
    conn.execute(update(IH).where(IH.c.history_id == history_id).values(notified=True))
