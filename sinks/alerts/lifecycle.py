"""The alert lifecycle as a pure state machine, plus the human summary of an alert.

Per (signal, scope) there is at most one *active* alert (open or acknowledged):

* a window out of control with no active alert **opens** one (its id is a UUIDv5 of signal, scope
  and the opening window, so a replay opens the same alert, never a second one);
* a window out of control with an active alert **updates** it (an **escalation** when the
  severity rises) and resets its in-control streak;
* a judged window in control adds one to the streak; after ``resolve_after`` of them the alert is
  **resolved**;
* windows too small to judge, or during the cold start, change nothing.

Acknowledging is an operator's act (``feedback alerts ack``): an acknowledged alert is still
active, is still updated, and still resolves by itself.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from pipeline.signal_schema import Alert
from sinks.alerts.detector import SIGNALS, Detection

ALERT_NAMESPACE = uuid.UUID("3d6f3f0a-7c55-5b8e-9f61-0c4b2a1e8d37")
ACTIVE = ("open", "acknowledged")
_SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


def alert_id_for(signal: str, scope_type: str, scope_value: str, window_start: datetime) -> uuid.UUID:
    return uuid.uuid5(ALERT_NAMESPACE, f"{signal}|{scope_type}|{scope_value}|{int(window_start.timestamp())}")


def event_id_for(alert_id: uuid.UUID, event: str, window_start: datetime) -> uuid.UUID:
    """Idempotency key of a detector event: the same window and event always give the same id."""
    return uuid.uuid5(alert_id, f"{event}|{int(window_start.timestamp())}")


def fmt_value(signal: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if signal == "negative_share":
        return f"{value:.0%}"
    if signal == "mean_sentiment":
        return f"{value:+.2f}"
    if signal == "nps":
        return f"{value:+.0f}"
    if signal == "csat":
        return f"{value:.2f}"
    return f"{value:.0f}"


def scope_phrase(scope_type: str, scope_value: str) -> str:
    return {
        "overall": "overall",
        "source": f"from source {scope_value}",
        "channel": f"on channel {scope_value}",
        "category": f"in category {scope_value}",
        "product": f"for product {scope_value}",
    }.get(scope_type, f"in {scope_type} {scope_value}")


def summarize(signal: str, scope_type: str, scope_value: str, expected: float | None, observed: float | None,
              n: int, window_start: datetime, resolved_after: int | None = None, persistent: bool = False,
              since: datetime | None = None) -> str:
    """E.g. "Share of negative feedback in category delivery rose from 18% to 57% (n=212) in the
    window starting 2026-03-10 00:00 UTC"."""
    sig = SIGNALS[signal]
    where = scope_phrase(scope_type, scope_value)
    when = f"in the window starting {window_start:%Y-%m-%d %H:%M} UTC"
    if resolved_after is not None:
        return (f"{sig.label} {where} is back in control for {resolved_after} windows: "
                f"{fmt_value(signal, observed)} against a baseline of {fmt_value(signal, expected)} "
                f"(n={n}) {when}")
    if since is not None:  # the count chart: every response since the run began, not one window
        return (f"{sig.label} {where} rose from {fmt_value(signal, expected)} usual to {fmt_value(signal, observed)} "
                f"over {n:,} responses since {since:%a %Y-%m-%d %H:%M} UTC")
    if persistent:  # the EWMA chart: the recent windows together, not this one alone
        side = "above" if sig.direction > 0 else "below"
        return (f"{sig.label} {where} has stayed {side} its baseline of {fmt_value(signal, expected)} over recent "
                f"windows; latest {fmt_value(signal, observed)} (n={n}) {when}")
    moved = (observed or 0) >= (expected or 0)
    verb = "rose" if moved else "fell"
    return (f"{sig.label} {where} {verb} from {fmt_value(signal, expected)} to {fmt_value(signal, observed)} "
            f"(n={n}) {when}")


@dataclass
class AlertState:
    """One alert as the lifecycle sees it (the warehouse row ``alerts`` holds the same fields)."""

    alert_id: uuid.UUID
    signal: str
    scope_type: str
    scope_value: str
    status: str
    severity: str
    first_window_start: datetime
    window_start: datetime
    window_end: datetime
    observed: float
    expected: float
    sample_size: int
    z_score: float | None
    opened_at: datetime
    updated_at: datetime
    summary: str
    resolved_at: datetime | None = None
    in_control_streak: int = 0
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    incident_id: uuid.UUID | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def to_alert(self, event: str | None = None, event_id: uuid.UUID | None = None,
                 event_at: datetime | None = None, actor: str | None = None, note: str | None = None) -> Alert:
        return Alert(
            alert_id=self.alert_id, signal=self.signal, scope_type=self.scope_type,  # type: ignore[arg-type]
            scope_value=self.scope_value, status=self.status, severity=self.severity,  # type: ignore[arg-type]
            window_start=self.window_start, window_end=self.window_end, observed=self.observed,
            expected=self.expected, opened_at=self.opened_at, resolved_at=self.resolved_at,
            summary=self.summary[:2000], event=event, event_id=event_id, event_at=event_at,  # type: ignore[arg-type]
            actor=actor, note=note, first_window_start=self.first_window_start, sample_size=self.sample_size,
            z_score=self.z_score, acknowledged_at=self.acknowledged_at, acknowledged_by=self.acknowledged_by,
            incident_id=self.incident_id,
        )


@dataclass(frozen=True)
class Transition:
    """The outcome of one window for one (signal, scope): the alert after it and the event, if any."""

    alert: AlertState | None
    event: str | None = None
    changed: bool = False


def step(active: AlertState | None, det: Detection, scope_type: str, scope_value: str,
         window_start: datetime, window_end: datetime, now: datetime, resolve_after: int) -> Transition:
    """Apply one judged window to the (signal, scope)'s active alert, if any."""
    if active is not None and not active.active:
        active = None  # a resolved alert is history; a new episode gets a new alert
    if det.state == "out":
        observed = det.value if det.value is not None else 0.0
        expected = det.expected if det.expected is not None else 0.0
        severity = det.severity or "warning"
        since = datetime.fromtimestamp(det.run_start, UTC) if det.rule == "cusum" and det.run_start else None
        summary = summarize(det.signal, scope_type, scope_value, expected, observed, det.sample_size, window_start,
                            persistent=det.rule == "ewma", since=since)
        if active is None:
            alert = AlertState(
                alert_id=alert_id_for(det.signal, scope_type, scope_value, window_start), signal=det.signal,
                scope_type=scope_type, scope_value=scope_value, status="open", severity=severity,
                first_window_start=window_start, window_start=window_start, window_end=window_end,
                observed=observed, expected=expected, sample_size=det.sample_size, z_score=det.z,
                opened_at=now, updated_at=now, summary=summary)
            return Transition(alert, "opened", True)
        escalated = _SEVERITY_RANK[severity] > _SEVERITY_RANK.get(active.severity, 0)
        alert = replace(active, severity=severity if escalated else active.severity, window_start=window_start,
                        window_end=window_end, observed=observed, expected=expected, sample_size=det.sample_size,
                        z_score=det.z, updated_at=now, summary=summary, in_control_streak=0)
        return Transition(alert, "escalated" if escalated else "updated", True)
    if active is None or det.state != "in":
        return Transition(active)
    streak = active.in_control_streak + 1
    if streak < resolve_after:
        return Transition(replace(active, in_control_streak=streak, updated_at=now), None, True)
    observed = det.value if det.value is not None else active.observed
    expected = det.expected if det.expected is not None else active.expected
    summary = summarize(det.signal, scope_type, scope_value, expected, observed, det.sample_size, window_start,
                        resolved_after=streak)
    alert = replace(active, status="resolved", resolved_at=now, updated_at=now, in_control_streak=streak,
                    observed=observed, expected=expected, sample_size=det.sample_size, z_score=det.z,
                    window_start=window_start, window_end=window_end, summary=summary)
    return Transition(alert, "resolved", True)
