"""Degrading signals end to end: two simulated weeks of hourly feedback through the real pipeline.

HTTP service -> broker -> processor (enrichment + signal windows in event time) -> alert sink ->
warehouse, ``feedback.alerts``, a real HTTP webhook receiver (that answers 500 for a while), a
Slack-compatible endpoint and a real SMTP server (aiosmtpd, STARTTLS + AUTH). From day 10 the share
of negative delivery feedback triples for two days, then recovers.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaConsumer
from sqlalchemy import text

from pipeline.schema import Alert
from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for
from tests.integration.test_alert_servers import Mailbox, Receiver, make_cert

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # Monday; the simulation covers 14 days from here
DAYS = 14
SHIFT = (9, 11)  # days (0-based) with the tripled share: day 10 and day 11
HOUR = timedelta(hours=1)
DELIVERY_PER_HOUR, OTHER_PER_HOUR = 40, 12
NEGATIVE_DELIVERY = ["The parcel arrived late and the box was crushed, terrible delivery.",
                     "My package never arrived and tracking is useless. Very disappointed."]
FINE_DELIVERY = ["Delivery was quick and the courier was friendly.", "The parcel came on time, good delivery.",
                 "The package was delivered yesterday."]
OTHER = ["The invoice was clear and the payment went through.", "Great app, love it!",
         "The checkout page is easy to use."]


def simulated_feedback(run: str) -> list[dict[str, Any]]:
    """Hourly feedback for two weeks, in event-time order (as a backfill would send it)."""
    rng = random.Random(20260302)
    records = []
    for h in range(DAYS * 24):
        start = T0 + h * HOUR
        share = 0.60 if SHIFT[0] * 24 <= h < SHIFT[1] * 24 else 0.20
        batch = []
        for _ in range(DELIVERY_PER_HOUR):
            text_ = rng.choice(NEGATIVE_DELIVERY if rng.random() < share else FINE_DELIVERY)
            batch.append({"text": text_, "product": rng.choice(["widget", "gadget"])})
        batch += [{"text": rng.choice(OTHER)} for _ in range(OTHER_PER_HOUR)]
        for i, item in enumerate(batch):
            item.update(source_ref=f"{run}-{h}-{i}",
                        event_time=(start + timedelta(seconds=rng.uniform(0, 3599))).isoformat())
        records += sorted(batch, key=lambda r: r["event_time"])
    return records


class DownForAWhile:
    """``/hook`` answers 500 to its first ``refusals`` requests (the receiver is down), then 200."""

    def __init__(self, refusals: int = 4) -> None:
        self.refusals = refusals
        self.failed = 0

    def __call__(self, rec: Any, _n: int) -> int:
        if rec.path != "/hook" or self.failed >= self.refusals:
            return 200
        self.failed += 1
        return 500


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Receiver, Mailbox, DownForAWhile]]:
    policy = DownForAWhile()
    receiver = Receiver(status=policy)
    box = Mailbox(*make_cert(tmp_path)).start()
    yield receiver, box, policy
    receiver.close()
    box.stop()


def test_two_weeks_one_alert_where_the_shift_starts_delivered_and_resolved(
        kafka_bootstrap: str, tmp_path: Path, servers: tuple[Receiver, Mailbox, DownForAWhile]) -> None:
    receiver, box, flaky = servers
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    p = Pipeline(kafka_bootstrap, url, engine, tmp_path)
    p.env.update({
        "FEEDBACK_SIGNAL_ALLOWED_LATENESS": "10m",
        "FEEDBACK_ALERT_WEBHOOK_URL": receiver.url("/hook"),
        "FEEDBACK_ALERT_SLACK_WEBHOOK_URL": receiver.url("/slack"),
        "FEEDBACK_ALERT_RETRY_INITIAL_SECONDS": "0.5",
        "FEEDBACK_ALERT_RETRY_MAX_SECONDS": "2",
        **{f"FEEDBACK_{k.upper()}": str(v) for k, v in box.settings().items() if k != "alert_smtp_to"},
        "FEEDBACK_ALERT_SMTP_TO": "ops@example.com",
    })
    try:
        for name in ("alerts", "processor", "http"):
            p.start(name)
        wait_for(lambda: _up(p.url), 90, what="http service")
        run = uuid.uuid4().hex[:8]
        records = simulated_feedback(run)
        half = len(records) // 2

        def post(batch: list[dict[str, Any]]) -> None:
            with httpx.Client(base_url=p.url, timeout=60) as client:
                for i in range(0, len(batch), 500):
                    r = client.post("/v1/events", json=batch[i:i + 500])
                    assert r.status_code == 202, r.text

        post(records[:half])
        # A crash mid-backfill: once windows are being closed, kill -9 the processor and the alert
        # sink. Restarted, the windows are rebuilt from the checkpoint by replay: nothing is lost and
        # nothing counted twice (checked below: every hourly delivery window holds exactly 40).
        wait_for(lambda: _count(engine, "SELECT count(*) FROM signal_windows WHERE scope_value='delivery'") >= 48,
                 120, interval=1.0, what="windows of the first week")
        p.kill("processor")
        p.kill("alerts")
        p.start("processor")
        p.start("alerts")
        post(records[half:])

        def delivery_alerts() -> list[dict[str, Any]]:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(text(
                    "SELECT * FROM alerts WHERE signal='negative_share' AND scope_type='category' "
                    "AND scope_value='delivery'"))]

        def resolved() -> bool:
            try:
                rows = delivery_alerts()
            except Exception:  # the sink has not created its tables yet
                return False
            return any(r["status"] == "resolved" for r in rows)

        wait_for(resolved, 180, interval=1.0, what="the delivery alert opened and resolved")
        [alert] = delivery_alerts()
        shift_start = T0 + SHIFT[0] * 24 * HOUR
        opened_window = _utc(alert["first_window_start"])
        assert abs(opened_window - shift_start) <= HOUR, opened_window
        assert _utc(alert["resolved_at"]) is not None
        assert shift_start + 2 * 24 * HOUR <= _utc(alert["window_start"]) < T0 + DAYS * 24 * HOUR
        assert "Share of negative feedback in category delivery rose from" in _history(engine, alert, "opened")

        def delivery_windows() -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(text(
                    "SELECT window_start, volume, negative FROM signal_windows WHERE scope_type='category' "
                    "AND scope_value='delivery' AND window_seconds=3600 ORDER BY window_start")))

        # windows close as the watermark passes them: all but the last few hours of the backfill
        windows = wait_for(lambda: (w := delivery_windows()) and len(w) >= DAYS * 24 - 3 and w, 60,
                           what="the hourly delivery windows")
        with engine.connect() as conn:
            early = conn.execute(text("SELECT signal, scope_type, scope_value, first_window_start FROM alerts")).all()
            # no alert of any kind before the shift: two quiet weeks stay quiet
            assert all(_utc(r.first_window_start) >= shift_start - HOUR for r in early), early
            daily = conn.execute(text("SELECT count(*) FROM signal_windows WHERE scope_type='product' "
                                      "AND window_seconds=86400")).scalar()
        # event-time windows: every hour of the simulation, each record counted exactly once
        assert len(windows) == len({w.window_start for w in windows})
        assert {w.volume for w in windows} == {DELIVERY_PER_HOUR}
        assert _utc(windows[0].window_start) == T0
        assert daily and daily >= 2 * (DAYS - 2)

        # the webhook answered 500 for a while and still got the alert, once, with one idempotency key
        aid = str(uuid.UUID(str(alert["alert_id"])))  # SQLite hands back the bare hex
        # notified: opened, maybe escalated (a window beyond the critical limit), resolved - in that order
        def notified(events: list[str]) -> bool:
            return events[:1] == ["opened"] and events[-1:] == ["resolved"] and set(events) <= {
                "opened", "escalated", "resolved"} and len(events) == len(set(events))

        wait_for(lambda: notified(_events(receiver, "/hook", aid, ok_only=True)), 60,
                 what="opened and resolved at the recovered webhook")
        assert flaky.failed == 4
        hooks = receiver.at("/hook")
        refused = {r.headers["idempotency-key"] for r in hooks if r.code == 500}
        accepted = [r.headers["idempotency-key"] for r in hooks if r.code == 200]
        assert refused and refused <= set(accepted)  # every refused event came again and got through
        assert len(accepted) == len(set(accepted))  # ...once
        opened = [r for r in hooks if r.json()["alert"]["alert_id"] == aid and r.json()["event"] == "opened"]
        assert [r.code for r in opened][-1] == 200 and len({r.headers["idempotency-key"] for r in opened}) == 1
        wait_for(lambda: notified(_events(receiver, "/slack", aid)), 30, what="slack")
        mails = wait_for(lambda: [m for m in box.messages if m["X-Feedback-Alert-Id"] == aid], 30, what="mail")
        assert notified([m["Subject"].split("]")[1].strip(" [") for m in mails])
        assert "negative_share category=delivery" in mails[0]["Subject"]

        # every event is on feedback.alerts too
        on_topic = _topic_events(p, aid)
        assert on_topic[0] == "opened" and on_topic[-1] == "resolved" and "updated" in on_topic
        assert p.metric("alerts", "feedback_alert_active", signal="negative_share", scope_type="category",
                        scope_value="delivery") == 0.0
        assert p.metric("alerts", "feedback_alert_events_total", signal="negative_share", event="opened") >= 1
    finally:
        p.stop()
        engine.dispose()


def _count(engine: Any, sql: str) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    except Exception:  # the sink has not created its tables yet
        return 0


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/docs", timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _history(engine: Any, alert: dict[str, Any], action: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT summary FROM alert_history WHERE alert_id = :a AND action = :x"),
                                {"a": alert["alert_id"], "x": action}).scalar_one())


def _events(receiver: Receiver, path: str, alert_id: str, ok_only: bool = False) -> list[str]:
    """The events of one alert a receiver got (``ok_only``: only those it answered 2xx)."""
    out = []
    for r in receiver.at(path):
        if ok_only and not 200 <= r.code < 300:
            continue
        body = r.json()
        if path == "/slack":
            if alert_id not in str(body):
                continue
            out.append(body["text"].split("]")[0].strip("["))
        elif body["alert"]["alert_id"] == alert_id:
            out.append(body["event"])
    return out


def _topic_events(p: Pipeline, alert_id: str) -> list[str]:
    consumer = KafkaConsumer(p.prefix + "feedback.alerts", bootstrap_servers=p.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000,
                             group_id=None)
    try:
        events = [Alert.model_validate_json(m.value) for m in consumer]
    finally:
        consumer.close()
    return [e.event or "" for e in events if str(e.alert_id) == alert_id]
