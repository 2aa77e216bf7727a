"""Degrading signals end to end: two simulated weeks of hourly feedback through the real pipeline.

HTTP service -> broker -> processor (enrichment + signal windows in event time) -> alert sink -> warehouse,
``feedback.alerts``, a real HTTP webhook receiver (that answers 500 for a while), a Slack-compatible endpoint
and a real SMTP server (aiosmtpd, STARTTLS + AUTH), with the warehouse sink writing the feedback the incident
quotes, on SQLite and on PostgreSQL (FEEDBACK_TEST_WAREHOUSES selects). The issue's scenario: 20 delivery and
20 other responses an hour (every hourly category window below ``FEEDBACK_SIGNAL_MIN_SAMPLE``); from day 10
the share of negative delivery feedback triples for two days, then recovers. One incident, driven by
``category=delivery``, is opened within a day of the onset, told to people once per state change, and
resolved.
"""

from __future__ import annotations

import json
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

from pipeline.signal_schema import Alert, Incident
from sinks.warehouse.db import make_engine
from tests.integration.conftest import WAREHOUSES
from tests.integration.harness import Pipeline, wait_for
from tests.integration.test_alert_servers import Mailbox, Receiver, make_cert
from tests.integration.warehouse_data import fresh_url

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # Monday; the simulation covers DAYS days from here
DAYS = 15  # the third in-control daily product window closes only once day 15 starts
SHIFT = (9, 11)  # days (0-based) with the tripled share: day 10 and day 11
HOUR = timedelta(hours=1)
DELIVERY_PER_HOUR, OTHER_PER_HOUR = 20, 20
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


@pytest.fixture(params=WAREHOUSES)
def warehouse_for_scenario(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty warehouse of each kind FEEDBACK_TEST_WAREHOUSES selects (SQLite file, PostgreSQL schema)."""
    with fresh_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Receiver, Mailbox, DownForAWhile]]:
    policy = DownForAWhile()
    receiver = Receiver(status=policy)
    box = Mailbox(*make_cert(tmp_path)).start()
    yield receiver, box, policy
    receiver.close()
    box.stop()


@pytest.mark.timeout(900)  # two weeks of feedback end to end: ~5 min on a quiet 2-core machine, more under load
def test_two_weeks_one_incident_driven_by_delivery_delivered_and_resolved(
        kafka_bootstrap: str, tmp_path: Path, servers: tuple[Receiver, Mailbox, DownForAWhile],
        warehouse_for_scenario: str) -> None:
    receiver, box, flaky = servers
    url = warehouse_for_scenario
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
        for name in ("alerts", "sink", "processor", "http"):
            p.start(name)
        wait_for(lambda: _up(p.url), 180, what="http service")  # slow to start on a loaded machine
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
                 300, interval=1.0, what="windows of the first week")  # the processor starts slowly under load
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

        wait_for(resolved, 420, interval=1.0, what="the delivery alert opened and resolved")  # slow under load
        [alert] = delivery_alerts()
        shift_start = T0 + SHIFT[0] * 24 * HOUR
        opened_window = _utc(alert["first_window_start"])
        assert shift_start <= opened_window <= shift_start + 24 * HOUR, opened_window  # within a day of onset
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

        # one incident, driven by delivery, quoting what customers said (the warehouse sink's rows)
        def incident() -> dict[str, Any] | None:
            with engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(text("SELECT * FROM incidents"))]
            return rows[0] if len(rows) == 1 and rows[0]["status"] == "resolved" else None

        try:
            inc = wait_for(incident, 60, what="one resolved incident")
        except AssertionError:
            with engine.connect() as conn:
                raise AssertionError([dict(r._mapping) for r in conn.execute(text(
                    "SELECT i.incident_id, i.status, i.driver_scope_type, i.driver_scope_value, a.signal, "
                    "a.scope_type, a.scope_value, a.status AS alert_status, a.first_window_start, a.window_start "
                    "FROM incidents i LEFT JOIN alerts a ON a.incident_id = i.incident_id"))]) from None
        iid = str(uuid.UUID(str(inc["incident_id"])))
        assert (inc["driver_scope_type"], inc["driver_scope_value"]) == ("category", "delivery")
        assert shift_start - 6 * HOUR <= _utc(inc["started_at"]) <= shift_start + 24 * HOUR
        assert inc["explained_share"] is not None and inc["explained_share"] >= 0.5
        with engine.connect() as conn:
            members = {str(uuid.UUID(str(m))) for m in conn.execute(text(
                "SELECT incident_id FROM alerts")).scalars()}
        assert members == {iid}  # overall, source, channel alerts joined it instead of opening their own

        # the webhook answered 500 for a while and still got each incident event, once, with one key
        def notified(events: list[str]) -> bool:
            return events[:1] == ["opened"] and events[-1:] == ["resolved"] and set(events) <= {
                "opened", "escalated", "resolved"} and len(events) == len(set(events))

        wait_for(lambda: notified(_events(receiver, "/hook", iid, ok_only=True)), 60,
                 what="opened and resolved at the recovered webhook")
        assert flaky.failed == 4
        hooks = receiver.at("/hook")
        assert all("incident" in r.json() for r in hooks)  # people hear of incidents, not of member alerts
        refused = {r.headers["idempotency-key"] for r in hooks if r.code == 500}
        accepted = [r.headers["idempotency-key"] for r in hooks if r.code == 200]
        assert refused and refused <= set(accepted)  # every refused event came again and got through
        assert len(accepted) == len(set(accepted))  # ...once
        wait_for(lambda: notified(_events(receiver, "/slack", iid)), 30, what="slack")
        opened = next(r.json() for r in receiver.at("/slack") if r.json()["text"].startswith("[opened]"))
        assert "Negative share of delivery feedback" in opened["text"] and "responses since" in opened["text"]
        mails = wait_for(lambda: [m for m in box.messages if m["X-Feedback-Incident-Id"] == iid], 30, what="mail")
        assert notified([m["Subject"].split("]")[1].strip(" [") for m in mails])
        assert "incident category=delivery" in mails[0]["Subject"]

        def stored_examples() -> list[str]:
            with engine.connect() as conn:
                found = conn.execute(text("SELECT examples FROM incidents")).scalar_one()
            return list(json.loads(found) if isinstance(found, str) else found or [])

        # the alert sink fills the examples every 10 s once the warehouse holds the comments (it can judge
        # the windows before the warehouse sink has stored them: incidents.fill_missing_examples)
        examples = wait_for(stored_examples, 60, what="the incident's examples")
        assert examples and set(examples) <= set(NEGATIVE_DELIVERY), examples

        # every alert event and every incident event is on feedback.alerts too
        aid = str(uuid.UUID(str(alert["alert_id"])))  # SQLite hands back the bare hex
        on_topic = _topic_events(p, aid)
        assert on_topic[0] == "opened" and on_topic[-1] == "resolved" and "updated" in on_topic
        assert _topic_events(p, iid, kind="incident")[:1] == ["opened"]
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
        elif alert_id in (body.get("incident", {}).get("incident_id"), body.get("alert", {}).get("alert_id")):
            out.append(body["event"])
    return out


def _topic_events(p: Pipeline, ident: str, kind: str = "alert") -> list[str]:
    consumer = KafkaConsumer(p.prefix + "feedback.alerts", bootstrap_servers=p.bootstrap,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=3000,
                             group_id=None)
    try:
        bodies = [json.loads(m.value) for m in consumer]
    finally:
        consumer.close()
    if kind == "incident":  # incident events carry no alert_id
        return [Incident.model_validate(b).event or "" for b in bodies
                if "alert_id" not in b and b.get("incident_id") == ident]
    return [Alert.model_validate(b).event or "" for b in bodies if b.get("alert_id") == ident]
