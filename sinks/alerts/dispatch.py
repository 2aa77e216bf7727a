"""Getting alert events out: the outbox pump, one delivery worker per channel, and the alert gauges.

Every alert event is first a row in ``alert_history``, every incident event a row in
``incident_history`` (written with the verdict, or by the CLI). The **pump** turns each new
history row into one outbox row per interested channel (the alerts topic gets every alert and
incident event; Slack, the webhook and e-mail get incident events, once per state change)
(``alert_deliveries``, primary key (event id, channel), so doing it twice changes nothing). Each
channel then has its own **worker** thread that delivers its rows in order, retrying with
exponential backoff (capped, honouring ``Retry-After``) until the receiver takes them.

Guarantees: a dead channel only delays itself - the others have their own threads and rows; an
event is never lost while a channel is down (its row stays pending in the warehouse, and the event
is in ``alert_history`` and on ``feedback.alerts``); a crash between sending and recording the
success re-sends the same event with the same idempotency key (at-least-once).
"""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from prometheus_client import Gauge
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError

from pipeline import metrics
from pipeline.logging import get_logger
from pipeline.signal_schema import Alert, Incident
from sinks.alerts import incidents, store
from sinks.alerts.channels import Channel, DeliveryError

log = get_logger(__name__)

#: Open incidents for Prometheus (deploy/prometheus/rules.yml: FeedbackIncidentOpen); every severity x
#: status is exported, 0 when there is none, so a rule sees the series fall back to 0.
OPEN_INCIDENTS = Gauge("feedback_open_incidents", "Incidents open or acknowledged, by severity and status.",
                       ["severity", "status"])
SEVERITIES = ("info", "warning", "critical")

#: Events the notification channels get (the alerts topic gets every event).
NOTIFY_EVENTS = frozenset({"opened", "reopened", "escalated", "acknowledged", "resolved", "note"})


def backoff(attempts: int, initial: float, cap: float, retry_after: float | None = None,
            rng: Callable[[], float] = random.random) -> float:
    """Seconds before retry number ``attempts`` (1-based): exponential with jitter, capped."""
    delay = min(cap, initial * 2 ** max(0, attempts - 1)) * (0.8 + 0.4 * rng())
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def wants(channel: str, event: str, notify_updates: bool, kind: str = "incident", notify_alerts: bool = False) -> bool:
    """Whether ``channel`` gets this event: the alerts topic gets every one; people get incidents."""
    if channel == "kafka":
        return True
    if kind == "alert" and not notify_alerts:
        return False  # member alerts reach people through their incident
    return event in NOTIFY_EVENTS or (notify_updates and event == "updated")


class Dispatcher:
    """Runs the pump and the channel workers as daemon threads until :meth:`stop`."""

    def __init__(self, engine: Engine, channels: list[Channel], retry_initial: float = 2.0,
                 retry_max: float = 300.0, notify_updates: bool = False, poll: float = 0.5,
                 notify_alerts: bool = False) -> None:
        self.engine = engine
        self.channels = channels
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.notify_updates = notify_updates
        self.notify_alerts = notify_alerts
        self.poll = poll
        self._stop = threading.Event()
        self._wake = {c.name: threading.Event() for c in channels}
        self._wake["_pump"] = threading.Event()
        self._threads: list[threading.Thread] = []
        self._known_gauges: set[tuple[str, str, str, str]] = set()

    def start(self) -> None:
        self._threads = [threading.Thread(target=self._pump_loop, name="alerts-pump", daemon=True)]
        self._threads += [threading.Thread(target=self._channel_loop, args=(c,), name=f"alerts-{c.name}", daemon=True)
                          for c in self.channels]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        for ev in self._wake.values():
            ev.set()
        for t in self._threads:
            t.join(timeout)
        for c in self.channels:
            try:
                c.close()
            except Exception:  # closing is best effort
                log.warning("channel close failed", channel=c.name)

    def nudge(self) -> None:
        """New events were written: pump now rather than at the next poll."""
        self._wake["_pump"].set()

    # -- pump --------------------------------------------------------------------------------------------
    def pump_once(self) -> int:
        """Create the outbox rows of every history row not yet notified; returns how many events."""
        now = datetime.now(UTC)
        names = [c.name for c in self.channels]
        with self.engine.begin() as conn:
            events = store.pending_events(conn)
            for ev in events:
                alert = ev.alert.to_alert(event=ev.action, event_id=ev.history_id, event_at=ev.at, actor=ev.actor,
                                          note=ev.note)
                payload = alert.model_dump(mode="json")
                store.enqueue(conn, ev, payload, [n for n in names if wants(
                    n, ev.action, self.notify_updates, "alert", self.notify_alerts)], now)
            incident_events = incidents.pending_events(conn)
            for row, inc in incident_events:
                store.enqueue_incident(conn, row.history_id, inc, [n for n in names if wants(
                    n, row.action, self.notify_updates)], now)
                incidents.mark_notified(conn, row.history_id)
        if events or incident_events:
            for wake in self._wake.values():
                wake.set()
        return len(events) + len(incident_events)

    def refresh_gauges(self) -> None:
        with self.engine.connect() as conn:
            rows = store.alert_gauge_rows(conn)
            pending = store.pending_counts(conn)
            open_incidents = store.open_incident_counts(conn)
        for severity in SEVERITIES:
            for status in ("open", "acknowledged"):
                OPEN_INCIDENTS.labels(severity, status).set(open_incidents.get((severity, status), 0))
        current: set[tuple[str, str, str, str]] = set()
        for signal, scope_type, scope_value, severity, active in rows:
            labels = (signal, scope_type, scope_value, severity)
            metrics.ALERT_ACTIVE.labels(*labels).set(active)
            current.add(labels)
        for labels in self._known_gauges - current:  # the severity of a (signal, scope) changed
            with contextlib.suppress(KeyError):
                metrics.ALERT_ACTIVE.remove(*labels)
        self._known_gauges = current
        for c in self.channels:
            metrics.ALERT_OUTBOX_PENDING.labels(c.name).set(pending.get(c.name, 0))

    def _pump_loop(self) -> None:
        wake = self._wake["_pump"]
        last_gauges = 0.0
        while not self._stop.is_set():
            try:
                self.pump_once()
                now = datetime.now(UTC).timestamp()
                if now - last_gauges >= 2.0:
                    self.refresh_gauges()
                    last_gauges = now
            except DBAPIError as exc:
                log.warning("alert pump: warehouse unavailable; retrying", error=str(exc.orig)[:200])
                metrics.SINK_ERRORS.labels("alerts_pump").inc()
            except Exception:
                log.exception("alert pump failed; retrying")
            wake.wait(self.poll)
            wake.clear()

    # -- channel workers ---------------------------------------------------------------------------------
    def deliver_due(self, channel: Channel) -> float | None:
        """Deliver this channel's pending rows strictly in event order.

        The oldest undelivered row goes first; while it waits for its retry the later ones wait too,
        so a receiver never sees "resolved" before "opened". Returns the seconds until the head row
        is due again (None: nothing pending).
        """
        with self.engine.connect() as conn:
            rows = store.pending_deliveries(conn, channel.name)
        for row in rows:
            if self._stop.is_set():
                return None
            now = datetime.now(UTC)
            due = store.utc(row.next_attempt_at)
            if due is not None and due > now:
                return (due - now).total_seconds()
            item: Alert | Incident = (Incident.model_validate(row.payload) if "alert_id" not in row.payload
                                      else Alert.model_validate(row.payload))
            try:
                if isinstance(item, Incident):
                    channel.deliver_incident(item)
                else:
                    channel.deliver(item)
            except DeliveryError as exc:
                now = datetime.now(UTC)
                attempts = row.attempts + 1
                if exc.permanent:
                    metrics.ALERT_DELIVERIES.labels(channel.name, "failed").inc()
                    log.error("alert delivery refused for good", channel=channel.name, event_id=str(row.event_id),
                              error=str(exc))
                    with self.engine.begin() as conn:
                        store.mark_delivery(conn, row.event_id, channel.name, "failed", now, str(exc)[:2000])
                    continue
                wait = backoff(attempts, self.retry_initial, self.retry_max, exc.retry_after)
                metrics.ALERT_DELIVERIES.labels(channel.name, "retry").inc()
                log.warning("alert delivery failed; will retry", channel=channel.name, event_id=str(row.event_id),
                            attempts=attempts, retry_in=round(wait, 2), error=str(exc)[:300])
                with self.engine.begin() as conn:
                    store.mark_delivery(conn, row.event_id, channel.name, "pending", now, str(exc)[:2000],
                                        retry_at=now + timedelta(seconds=wait))
                return wait
            with self.engine.begin() as conn:
                store.mark_delivery(conn, row.event_id, channel.name, "delivered", datetime.now(UTC))
            metrics.ALERT_DELIVERIES.labels(channel.name, "delivered").inc()
            log.info("alert delivered", channel=channel.name, alert_event=item.event, id=str(row.alert_id))
        return 0.0 if rows else None

    def _channel_loop(self, channel: Channel) -> None:
        wake = self._wake[channel.name]
        while not self._stop.is_set():
            wait = self.poll
            try:
                seconds = self.deliver_due(channel)
                wait = min(max(0.01, seconds), 5.0) if seconds is not None else 5.0
            except DBAPIError as exc:
                log.warning("alert channel: warehouse unavailable", channel=channel.name, error=str(exc.orig)[:200])
            except Exception:
                log.exception("alert channel worker failed; retrying", channel=channel.name)
            wake.wait(wait)
            wake.clear()
