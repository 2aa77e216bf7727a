"""Judging closed windows: store, detect, run the lifecycle, record events - inside one transaction.

The detector's state is the warehouse: the baseline is read from ``signal_windows`` (the verdicts
are stored there too, including the EWMA value the next window continues from) and the active
alert from ``alerts``. A restarted sink therefore continues exactly where it stopped, and an
operator's ack or resolve (written by the CLI) is seen by the very next window.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from pipeline.logging import get_logger
from pipeline.signal_schema import SignalWindow
from sinks.alerts import incidents, store
from sinks.alerts.cusum import judge_window
from sinks.alerts.detector import DAY, WEEK, Detection, DetectorConfig, Entry, History, WindowStats
from sinks.alerts.lifecycle import AlertState, event_id_for, step

log = get_logger(__name__)

Key = tuple[str, str, int]
#: Scopes whose history stays in memory (the rest is read again from the warehouse when judged).
CACHED_SCOPES = 256


@dataclass
class JudgeResult:
    """What a batch changed, for the metrics (applied only after the transaction committed)."""

    values: dict[tuple[str, str, str], float] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)
    windows: int = 0
    skipped: int = 0


class SignalJudge:
    """Judges closed windows, oldest first, each exactly once (the first emission of a window wins).

    Guarantees: a window already stored is skipped, so re-emitted windows never count twice; a
    window older than the scope's latest judged window is stored but not judged (out of order);
    at most one active alert per (signal, scope), also enforced by a unique index.
    """

    def __init__(self, cfg: DetectorConfig, resolve_after: int) -> None:
        self.cfg = cfg
        self.resolve_after = resolve_after
        self.cache: OrderedDict[Key, History] = OrderedDict()  # least recently judged scope first

    def lookback(self, seconds: int) -> timedelta:
        period = WEEK if seconds <= DAY else seconds
        return timedelta(seconds=period * 2 * self.cfg.baseline_windows + seconds)

    def reset(self) -> None:
        """Forget the cached histories (after a failed transaction they may be ahead of the database)."""
        self.cache.clear()

    def _history(self, conn: Connection, w: SignalWindow) -> History:
        key = (w.scope_type, w.scope_value, w.window_seconds)
        hist = self.cache.get(key)
        if hist is None:
            since = w.window_start - self.lookback(w.window_seconds)
            hist = History(store.load_history(conn, w.scope_type, w.scope_value, w.window_seconds, since))
            self.cache[key] = hist
            while len(self.cache) > CACHED_SCOPES:  # bounded memory with many products: reload when needed
                self.cache.popitem(last=False)
        self.cache.move_to_end(key)
        return hist

    def judge(self, conn: Connection, windows: list[SignalWindow], now: datetime) -> JudgeResult:
        result = JudgeResult()
        ordered = sorted(windows, key=lambda w: (w.window_end, w.window_seconds, w.scope_type, w.scope_value))
        known = store.existing_windows(conn, [w.window_id for w in ordered])
        active = store.all_active_alerts(conn)
        rows: list[dict[str, Any]] = []
        changes: list[tuple[str, AlertState, Detection, SignalWindow]] = []
        for w in ordered:
            if w.window_id in known:  # the first emission of a window wins
                result.skipped += 1
                continue
            known.add(w.window_id)
            hist = self._history(conn, w)
            stats = WindowStats.of(w)
            if hist.last_start is not None and stats.start <= hist.last_start:
                rows.append(store.window_row(w, now, {"_skipped": "out_of_order"}))
                result.skipped += 1
                continue
            detections = judge_window(stats, hist, self.cfg)
            for det in detections.values():
                self._step(conn, w, det, active, result, changes, now)
            verdict = {s: d.to_dict() for s, d in detections.items()}
            rows.append(store.window_row(w, now, verdict))
            hist.add(Entry(stats, verdict))
            hist.trim(stats.start - self.lookback(w.window_seconds).total_seconds())
            result.windows += 1
        store.insert_windows(conn, rows)
        self._incidents(conn, changes, now)
        return result

    def _step(self, conn: Connection, w: SignalWindow, det: Detection, active: dict[tuple[str, str, str], AlertState],
              result: JudgeResult, changes: list[tuple[str, AlertState, Detection, SignalWindow]],
              now: datetime) -> None:
        """Run one signal's verdict through the alert lifecycle and record what changed."""
        signal = det.signal
        if det.value is not None:
            result.values[(signal, w.scope_type, w.scope_value)] = det.value
        key = (signal, w.scope_type, w.scope_value)
        t = step(active.get(key), det, w.scope_type, w.scope_value, w.window_start, w.window_end, now,
                 self.resolve_after)
        if not t.changed or t.alert is None:
            return
        if not store.save_alert(conn, t.alert, t.event):
            active.pop(key, None)  # resolved by an operator meanwhile, or opened by an earlier run
            return
        active[key] = t.alert
        if t.event is not None:
            hid = event_id_for(t.alert.alert_id, t.event, w.window_start)
            store.add_history(conn, hid, t.alert, t.event, "detector", now)
            result.events.append((signal, t.event))
            changes.append((t.event, t.alert, det, w))
            log.info("alert " + t.event, alert_id=str(t.alert.alert_id), signal=signal,
                     scope=f"{w.scope_type}={w.scope_value}", summary=t.alert.summary)

    @staticmethod
    def _incidents(conn: Connection, changes: list[tuple[str, AlertState, Detection, SignalWindow]],
                   now: datetime) -> None:
        """Group the batch's alert changes into incidents, in event-time order (after the windows are stored)."""
        for event, alert, det, w in changes:
            if event == "opened":
                started = datetime.fromtimestamp(det.run_start, UTC) if det.run_start else w.window_start
                incidents.attach(conn, incidents.Opened(alert, min(started, w.window_start), w.window_seconds), now)
            elif event in ("resolved", "escalated"):
                incidents.settle(conn, [alert.alert_id], now)


def config_from(settings: Any) -> DetectorConfig:
    """The detector configuration of :class:`pipeline.config.SignalSettings`."""
    return DetectorConfig(min_sample=settings.signal_min_sample, cold_start=settings.signal_cold_start,
                          baseline_windows=settings.signal_baseline_windows,
                          sensitivity=dict(settings.signal_sensitivity))
