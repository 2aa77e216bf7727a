"""The alert lifecycle state machine, its ids and its human summary."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sinks.alerts.detector import Detection
from sinks.alerts.dispatch import backoff, wants
from sinks.alerts.lifecycle import AlertState, alert_id_for, event_id_for, step, summarize

T0 = datetime(2026, 3, 10, tzinfo=UTC)
HOUR = timedelta(hours=1)


def det(state: str, value: float = 0.57, expected: float = 0.18, severity: str | None = "warning",
        n: int = 212) -> Detection:
    return Detection("negative_share", state, value=value, expected=expected, z=4.2 if state == "out" else 0.3,
                     severity=severity if state == "out" else None, sample_size=n)


def run(states: list[Detection], resolve_after: int = 3, start: AlertState | None = None,
        ) -> list[tuple[str | None, AlertState | None]]:
    alert, out = start, []
    for i, d in enumerate(states):
        ws = T0 + i * HOUR
        t = step(alert, d, "category", "delivery", ws, ws + HOUR, ws + HOUR + timedelta(minutes=15), resolve_after)
        out.append((t.event, t.alert))
        alert = t.alert
    return out


def test_summary_reads_like_a_sentence() -> None:
    assert summarize("negative_share", "category", "delivery", 0.18, 0.57, 212, T0) == (
        "Share of negative feedback in category delivery rose from 18% to 57% (n=212) "
        "in the window starting 2026-03-10 00:00 UTC")
    assert summarize("nps", "source", "email", 31.0, 12.4, 80, T0) == (
        "NPS from source email fell from +31 to +12 (n=80) in the window starting 2026-03-10 00:00 UTC")
    assert "back in control for 3 windows" in summarize("csat", "overall", "all", 4.2, 4.1, 50, T0, resolved_after=3)


def test_open_update_escalate_then_resolve_after_n_in_control_windows() -> None:
    seq = [det("in"), det("out"), det("out"), det("out", severity="critical"), det("in"), det("low_volume"),
           det("in"), det("out"), det("in"), det("in"), det("cold_start"), det("in")]
    events = [e for e, _ in run(seq)]
    assert events == [None, "opened", "updated", "escalated", None, None, None, "updated", None, None, None,
                      "resolved"]
    results = run(seq)
    opened = results[1][1]
    assert opened is not None and opened.status == "open" and opened.first_window_start == T0 + HOUR
    assert opened.alert_id == alert_id_for("negative_share", "category", "delivery", T0 + HOUR)
    ids = {a.alert_id for _, a in results if a is not None}
    assert len(ids) == 1  # never a second alert while one is active
    final = results[-1][1]
    assert final is not None and final.status == "resolved" and final.severity == "critical"
    assert final.resolved_at == T0 + 12 * HOUR + timedelta(minutes=15)
    assert final.in_control_streak == 3 and "back in control" in final.summary


def test_low_volume_and_cold_windows_neither_open_nor_resolve() -> None:
    assert [e for e, _ in run([det("low_volume"), det("cold_start"), det("off")])] == [None, None, None]
    opened = run([det("out")])[0][1]
    assert [e for e, _ in run([det("low_volume")] * 10, start=opened)] == [None] * 10


def test_acknowledged_alerts_are_updated_and_still_resolve() -> None:
    opened = run([det("out")])[0][1]
    assert opened is not None
    acked = replace(opened, status="acknowledged", acknowledged_by="ops-anna")
    results = run([det("out"), det("in"), det("in"), det("in")], start=acked)
    assert [e for e, _ in results] == ["updated", None, None, "resolved"]
    assert results[0][1] is not None and results[0][1].status == "acknowledged"
    assert results[0][1].alert_id == opened.alert_id


def test_a_resolved_alert_is_history_the_next_episode_is_a_new_alert() -> None:
    first = run([det("out"), det("in")], resolve_after=1)[-1][1]
    assert first is not None and first.status == "resolved"
    again = step(first, det("out"), "category", "delivery", T0 + 5 * HOUR, T0 + 6 * HOUR, T0 + 6 * HOUR, 1)
    assert again.event == "opened" and again.alert is not None and again.alert.alert_id != first.alert_id


def test_event_ids_are_stable_idempotency_keys() -> None:
    aid = alert_id_for("nps", "product", "widget", T0)
    assert aid == alert_id_for("nps", "product", "widget", T0)
    assert event_id_for(aid, "opened", T0) == event_id_for(aid, "opened", T0)
    assert event_id_for(aid, "opened", T0) != event_id_for(aid, "updated", T0)


def test_channel_policy_and_backoff() -> None:
    assert wants("kafka", "updated", False) and not wants("webhook", "updated", False)
    assert wants("webhook", "updated", True) and wants("email", "opened", False) and wants("slack", "resolved", False)
    delays = [backoff(a, 2.0, 60.0, rng=lambda: 0.5) for a in range(1, 8)]
    assert delays == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert backoff(1, 2.0, 60.0, retry_after=30.0, rng=lambda: 0.5) == 30.0  # the receiver's Retry-After
    assert backoff(1, 2.0, 60.0, retry_after=3600.0, rng=lambda: 0.5) == 60.0  # ...but never beyond the cap
