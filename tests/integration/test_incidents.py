"""Incidents in the warehouse (SQLite and PostgreSQL): the issue's delivery scenario judged window by
window, grouped into one incident driven by ``category=delivery``, with examples from the stored
feedback, an operator's acknowledgement, the channels told once per state change, and the CLI."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, text
from typer.testing import CliRunner

from pipeline import cli
from pipeline.signal_schema import SignalWindow
from processors.signals.windows import window_id
from sinks.alerts import admin, incidents
from sinks.alerts.channels import WebhookChannel
from sinks.alerts.detector import DetectorConfig
from sinks.alerts.dispatch import Dispatcher
from sinks.alerts.judge import SignalJudge
from sinks.warehouse.db import make_engine
from sinks.warehouse.models import Feedback, FeedbackCategory
from tests.integration.harness import wait_for
from tests.integration.test_alert_servers import Receiver
from tests.integration.test_alert_sink import alert_db  # noqa: F401  (the SQLite/PostgreSQL fixture)

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)
ONSET, END = 9 * 24, 11 * 24  # hours: the delivery share triples on days 10 and 11
KEYS = {"incident_id", "status", "severity", "driver_scope_type", "driver_scope_value", "signals", "started_at",
        "opened_at", "explained_share", "alerts", "examples"}
COMPLAINTS = ["The parcel arrived late and the box was crushed.", "My package never arrived, tracking is useless.",
              "Courier left the parcel in the rain.", "Third late delivery this month."]


def _window(scope: tuple[str, str], start: datetime, n: int, neg: int) -> SignalWindow:
    return SignalWindow(window_id=window_id(scope[0], scope[1], start.timestamp(), 3600), scope_type=scope[0],
                        scope_value=scope[1], window_start=start, window_end=start + HOUR, window_seconds=3600,
                        volume=n, negative=neg, neutral=n - neg, positive=0, negative_share=neg / n if n else None)


def scenario(hours: int, seed: int = 3) -> tuple[list[SignalWindow], list[tuple[datetime, str, str]]]:
    """20 delivery + 20 other responses an hour; windows of every scope, and some negative comments."""
    rng = random.Random(seed)
    windows, comments = [], []
    for h in range(hours):
        start = T0 + h * HOUR
        p = 0.6 if ONSET <= h < END else 0.2
        d = sum(rng.random() < p for _ in range(20))
        o = sum(rng.random() < 0.2 for _ in range(20))
        windows += [_window(("category", "delivery"), start, 20, d), _window(("category", "other"), start, 20, o),
                    _window(("overall", "all"), start, 40, d + o), _window(("source", "event"), start, 40, d + o)]
        if ONSET <= h < END and h % 3 == 0:
            comments.append((start + timedelta(minutes=5), "delivery", rng.choice(COMPLAINTS)))
        if h % 7 == 0:
            comments.append((start + timedelta(minutes=9), "other", "The app crashed at checkout."))
    return windows, comments


def store_comments(engine: Any, comments: list[tuple[datetime, str, str]]) -> None:
    rows, cats = [], []
    for at, category, body in comments:
        fid = uuid.uuid4()
        rows.append({"feedback_id": fid, "schema_version": 1, "source": "event", "channel": None,
                     "source_ref": str(fid), "text": body, "tags": [], "attributes": {}, "sentiment_polarity": -0.6,
                     "sentiment_subjectivity": 0.5, "sentiment_label": "negative", "sentiment_analyzer": "test",
                     "primary_category": category, "event_time": at, "event_date": at.date(), "received_at": at,
                     "processed_at": at, "written_at": at})
        cats.append({"feedback_id": fid, "category": category, "confidence": 0.9, "rank": 1})
    with engine.begin() as conn:
        conn.execute(insert(Feedback.__table__), rows)
        conn.execute(insert(FeedbackCategory.__table__), cats)


def judge(engine: Any, judge_: SignalJudge, windows: list[SignalWindow]) -> None:
    for i in range(0, len(windows), 200):  # batches, as the consumer hands them over
        with engine.begin() as conn:
            judge_.judge(conn, windows[i:i + 200], datetime.now(UTC))


def test_delivery_scenario_is_one_incident_driven_by_delivery(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    receiver = Receiver()
    dispatcher = Dispatcher(engine, [WebhookChannel(receiver.url("/hook"), 5.0)], retry_initial=0.3, poll=0.1)
    try:
        windows, comments = scenario(13 * 24)
        store_comments(engine, comments)
        j = SignalJudge(DetectorConfig(), resolve_after=3)
        cut = 4 * (ONSET + 12)  # half a day into the shift
        judge(engine, j, windows[:cut])
        with engine.connect() as conn:
            [inc] = incidents.list_incidents(conn)
            alerts = conn.execute(text("SELECT alert_id, signal, scope_type, scope_value, incident_id, "
                                       "first_window_start FROM alerts")).all()
        assert (inc.driver_scope_type, inc.driver_scope_value) == ("category", "delivery")
        assert inc.status == "open" and "negative_share" in inc.signals
        onset = T0 + ONSET * HOUR
        assert onset - 6 * HOUR <= inc.started_at <= onset + 24 * HOUR
        assert all(r.first_window_start is not None for r in alerts)
        # overall/source alerts of the same cause joined the delivery incident instead of opening their own
        assert {uuid.UUID(str(r.incident_id)) for r in alerts} == {inc.incident_id}
        assert ("category", "delivery") in {(r.scope_type, r.scope_value) for r in alerts}
        assert inc.explained_share is not None and inc.explained_share >= 0.7
        assert 0.45 < (inc.observed or 0) < 0.75 and 0.15 < (inc.expected or 0) < 0.3 and (inc.sample_size or 0) >= 20
        assert "delivery feedback" in inc.summary and "responses since" in inc.summary and "explains" in inc.summary
        assert 3 <= len(inc.examples) <= 5 and set(inc.examples) <= set(COMPLAINTS)  # delivery's, not "other"'s

        admin.act_any(engine, str(inc.incident_id)[:8], "acknowledged", "anna", "courier contacted")
        judge(engine, j, windows[cut:])
        with engine.connect() as conn:
            [done] = incidents.list_incidents(conn)
            statuses = {r.status for r in conn.execute(text("SELECT status FROM alerts"))}
            trail = [(h["action"], h["actor"]) for h in incidents.history(conn, inc.incident_id)]
        assert done.status == "resolved" and statuses == {"resolved"} and done.incident_id == inc.incident_id
        assert trail[0] == ("opened", "detector") and ("acknowledged", "anna") in trail
        assert trail[-1] == ("resolved", "detector")

        listed = CliRunner().invoke(cli.app, ["alerts", "list", "--json"], env={"FEEDBACK_WAREHOUSE_URL": alert_db})
        assert listed.exit_code == 0, listed.output
        [shown] = json.loads(listed.stdout)
        assert set(shown) >= KEYS and shown["driver_scope_value"] == "delivery" and shown["status"] == "resolved"
        assert len(shown["alerts"]) == len(alerts) and shown["examples"]

        dispatcher.start()  # people hear of the incident once per state change, never of each member alert
        wait_for(lambda: any(r.json()["event"] == "resolved" for r in receiver.at("/hook")), 30,
                 what="the incident's events at the webhook")
        bodies = [r.json() for r in receiver.at("/hook")]
        assert all("incident" in b and "alert" not in b for b in bodies)
        events = [b["event"] for b in bodies]
        assert events[0] == "opened" and events[-1] == "resolved" and "acknowledged" in events
        assert len(events) == len(set(events))
        opened = bodies[0]["incident"]
        assert opened["driver_scope_value"] == "delivery" and opened["examples"]
    finally:
        dispatcher.stop()
        receiver.close()
        engine.dispose()


def test_quiet_fortnight_opens_nothing_and_judges_the_small_categories(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    try:
        windows, _ = scenario(ONSET)  # the two quiet weeks before the shift, every scope judged
        judge(engine, SignalJudge(DetectorConfig(), resolve_after=3), windows)
        with engine.connect() as conn:
            assert incidents.list_incidents(conn) == []
            verdicts = [d if isinstance(d, dict) else json.loads(d) for d in conn.execute(text(
                "SELECT detection FROM signal_windows WHERE scope_type='category'")).scalars()]
        judged = [v for v in verdicts if "cusum" in v["negative_share"]]
        assert len(judged) > 2 * 24 * 5  # the 20-an-hour categories are judged (by the count chart)
        assert all(v["negative_share"]["state"] == "in" for v in judged)
    finally:
        engine.dispose()


def test_choose_driver_prefers_the_most_specific_scope_that_explains_the_shift() -> None:
    e = incidents.Excess
    excess = {("overall", "all"): e(800, 300, 160.0), ("source", "event"): e(800, 300, 160.0),
              ("category", "delivery"): e(400, 230, 80.0), ("category", "other"): e(400, 70, 80.0)}
    d = incidents.choose_driver(excess, ("overall", "all"))
    assert d.scope == ("category", "delivery") and d.explained_share is not None and 0.99 <= d.explained_share <= 1
    # the rise is spread evenly: no category explains half of it, so the broad scope drives
    even = {("overall", "all"): e(800, 240, 160.0), ("category", "a"): e(400, 120, 80.0),
            ("category", "b"): e(400, 120, 80.0)}
    assert incidents.choose_driver(even, ("overall", "all")).scope in {("category", "a"), ("category", "b")}
    thin = {("overall", "all"): e(800, 240, 160.0), ("category", "a"): e(200, 60, 40.0),
            ("category", "b"): e(200, 60, 40.0), ("category", "c"): e(200, 60, 40.0), ("category", "d"): e(200, 60,
                                                                                                             40.0)}
    assert incidents.choose_driver(thin, ("overall", "all")).scope == ("overall", "all")


def test_open_incident_gauge_follows_the_warehouse(alert_db: str) -> None:  # noqa: F811
    """feedback_open_incidents{severity,status}: what deploy/prometheus/rules.yml's FeedbackIncidentOpen reads."""
    from prometheus_client import REGISTRY

    engine = make_engine(alert_db)
    dispatcher = Dispatcher(engine, [])
    now = datetime.now(UTC)

    def gauge(severity: str, status: str) -> float | None:
        return REGISTRY.get_sample_value("feedback_open_incidents", {"severity": severity, "status": status})

    try:
        ids = [uuid.uuid4() for _ in range(4)]
        with engine.begin() as conn:
            for iid, (status, severity) in zip(ids, [("open", "critical"), ("open", "warning"), ("open", "warning"),
                                                     ("resolved", "critical")], strict=True):
                conn.execute(incidents.INC.insert().values(
                    incident_id=iid, kind="signal", status=status, severity=severity, driver_scope_type="category",
                    driver_scope_value="delivery", signals=["negative_share"], started_at=now, opened_at=now,
                    updated_at=now, summary="test", examples=[]))
        dispatcher.refresh_gauges()
        assert (gauge("critical", "open"), gauge("warning", "open"), gauge("info", "open")) == (1.0, 2.0, 0.0)
        assert gauge("critical", "acknowledged") == 0.0  # the resolved one is not counted
        admin.act_any(engine, str(ids[0]), "acknowledged", "anna", "on it")
        dispatcher.refresh_gauges()
        assert (gauge("critical", "open"), gauge("critical", "acknowledged")) == (0.0, 1.0)
    finally:
        engine.dispose()


def test_an_incident_judged_before_its_comments_were_stored_gets_them_later(alert_db: str) -> None:  # noqa: F811
    """The signals can reach the alert sink before the warehouse sink stored the same feedback (a backlog
    drains faster through the signals): the incident opens without examples and gets them afterwards."""
    engine = make_engine(alert_db)
    windows, comments = scenario(13 * 24, seed=5)
    j = SignalJudge(DetectorConfig(), resolve_after=3)
    judge(engine, j, windows[:4 * (ONSET + 12)])  # nothing stored yet
    with engine.connect() as conn:
        [inc] = incidents.list_incidents(conn)
    assert inc.examples == []
    store_comments(engine, comments)
    with engine.begin() as conn:
        assert incidents.fill_missing_examples(conn, datetime.now(UTC)) == 1
        assert incidents.fill_missing_examples(conn, datetime.now(UTC)) == 0  # nothing left to fill
    with engine.connect() as conn:
        [inc] = incidents.list_incidents(conn)
    assert 3 <= len(inc.examples) <= 5 and set(inc.examples) <= set(COMPLAINTS)
