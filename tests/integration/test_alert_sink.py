"""The alert sink's warehouse side on SQLite and PostgreSQL: judging windows, the lifecycle in the
database, the outbox with real receivers (a dead channel, a failing-then-recovering one), the
corrective-action commands, and the Prometheus gauges."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from pipeline.broker import free_port
from pipeline.signal_config import AlertSettings
from pipeline.signal_schema import SignalWindow
from processors.signals.windows import window_id
from sinks.alerts import store
from sinks.alerts.channels import EmailChannel, SlackChannel, WebhookChannel
from sinks.alerts.detector import DetectorConfig
from sinks.alerts.dispatch import Dispatcher
from sinks.alerts.judge import SignalJudge
from sinks.alerts.lifecycle import AlertState, alert_id_for
from sinks.warehouse.alerts import AlertRow
from sinks.warehouse.db import make_engine, migrate
from tests.conftest import require
from tests.integration.harness import wait_for
from tests.integration.test_alert_servers import Mailbox, Receiver, make_cert

pytestmark = pytest.mark.integration

PG_DSN = os.environ.get("FEEDBACK_TEST_PG_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
HOUR = timedelta(hours=1)


@pytest.fixture(params=["sqlite", "postgresql"])
def alert_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, migrated warehouse per test (a file, or a schema of its own)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('alerts') / 'warehouse.db'}"
        schema = None
    else:
        try:
            with psycopg.connect(PG_DSN, connect_timeout=3):
                pass
            ok = True
        except psycopg.Error:
            ok = False
        require(ok, f"PostgreSQL at {PG_DSN}")
        schema = f"a_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        url = PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
    engine = make_engine(url)
    migrate(engine)
    engine.dispose()
    yield url
    if schema:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def window(start: datetime, n: int, neg: int, scope: tuple[str, str] = ("category", "delivery")) -> SignalWindow:
    return SignalWindow(window_id=window_id(scope[0], scope[1], start.timestamp(), 3600), scope_type=scope[0],
                        scope_value=scope[1], window_start=start, window_end=start + HOUR, window_seconds=3600,
                        volume=n, negative=neg, neutral=n - neg, positive=0, negative_share=neg / n)


def series(days: int, shift: tuple[int, int], seed: int = 5) -> list[SignalWindow]:
    """Hourly windows, 40 responses each; the negative share triples (20% -> 60%) in the ``shift`` days."""
    rng = random.Random(seed)
    out = []
    for h in range(days * 24):
        p = 0.60 if shift[0] * 24 <= h < shift[1] * 24 else 0.20
        out.append(window(T0 + h * HOUR, 40, sum(rng.random() < p for _ in range(40))))
    return out


def test_judge_opens_one_alert_updates_and_resolves_it(alert_db: str) -> None:
    engine = make_engine(alert_db)
    judge = SignalJudge(DetectorConfig(), resolve_after=3)
    windows = series(13, shift=(9, 11))
    for i in range(0, len(windows), 50):  # batches, as the consumer hands them over
        with engine.begin() as conn:
            judge.judge(conn, windows[i:i + 50], datetime.now(UTC))
    with engine.connect() as conn:
        alerts = store.list_alerts(conn)
        [alert] = [a for a in alerts if a.signal == "negative_share"]
        assert abs(alert.first_window_start - (T0 + 9 * 24 * HOUR)) <= HOUR
        assert alert.status == "resolved" and alert.resolved_at is not None
        assert T0 + 11 * 24 * HOUR < alert.window_start < T0 + 12 * 24 * HOUR
        actions = [h["action"] for h in store.history(conn, alert.alert_id)]
        assert actions[0] == "opened" and actions[-1] == "resolved" and actions.count("opened") == 1
        assert "updated" in actions and all(h["actor"] == "detector" for h in store.history(conn, alert.alert_id))
        stored = conn.execute(text("SELECT count(*) FROM signal_windows WHERE evaluated_at IS NOT NULL")).scalar()
        assert stored == len(windows)
        verdicts = conn.execute(text("SELECT detection FROM signal_windows ORDER BY window_start")).all()
        first = json.loads(verdicts[0][0]) if isinstance(verdicts[0][0], str) else verdicts[0][0]
        assert first["negative_share"]["state"] == "cold_start"

    # the same windows again (a redelivery, a replay): nothing changes
    fresh = SignalJudge(DetectorConfig(), resolve_after=3)
    with engine.begin() as conn:
        result = fresh.judge(conn, windows[-60:], datetime.now(UTC))
    assert result.windows == 0 and result.skipped == 60 and result.events == []

    # the database itself refuses a second active alert for one (signal, scope)
    with engine.begin() as conn:
        for k in range(2):
            state = AlertState(alert_id=uuid.uuid4(), signal="nps", scope_type="overall", scope_value="all",
                               status="open", severity="warning", first_window_start=T0, window_start=T0,
                               window_end=T0 + HOUR, observed=1.0, expected=2.0, sample_size=40, z_score=None,
                               opened_at=T0, updated_at=T0, summary="x")
            if k == 0:
                store.save_alert(conn, state, "opened")
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(AlertRow.__table__.insert().values(
            **{c.name: getattr(state, c.name) for c in AlertRow.__table__.columns if hasattr(state, c.name)},
            resolved_by=None))
    engine.dispose()


def _open_alert(engine: Engine, scope_value: str) -> AlertState:
    now = datetime.now(UTC)
    state = AlertState(
        alert_id=alert_id_for("negative_share", "category", scope_value, T0), signal="negative_share",
        scope_type="category", scope_value=scope_value, status="open", severity="warning", first_window_start=T0,
        window_start=T0, window_end=T0 + HOUR, observed=0.45, expected=0.15, sample_size=40, z_score=5.0,
        opened_at=now, updated_at=now, summary=f"Share of negative feedback in category {scope_value} rose")
    with engine.begin() as conn:
        assert store.save_alert(conn, state, "opened")
        store.add_history(conn, uuid.uuid4(), state, "opened", "detector", now)
    return state


def test_dead_channel_never_blocks_the_others_and_a_flaky_one_gets_it_once_recovered(
        alert_db: str, tmp_path: pytest.TempPathFactory) -> None:
    engine = make_engine(alert_db)
    flaky = Receiver(status=lambda r, n: 500 if r.path == "/hook" and n <= 3 else 200)
    box = Mailbox(*make_cert(tmp_path)).start()  # type: ignore[arg-type]
    dead_port = free_port()
    dead = WebhookChannel(f"http://127.0.0.1:{dead_port}/hook", 2.0)
    dead.name = "dead_webhook"  # type: ignore[misc]
    channels = [dead, WebhookChannel(flaky.url("/hook"), 5.0), SlackChannel(flaky.url("/slack"), 5.0),
                EmailChannel(AlertSettings(**box.settings()))]
    dispatcher = Dispatcher(engine, channels, retry_initial=0.3, retry_max=1.0, poll=0.1,
                            notify_alerts=True)  # member alerts to people too: the outbox under test
    later: Receiver | None = None
    try:
        alert = _open_alert(engine, "delivery")
        dispatcher.start()
        wait_for(lambda: box.messages and flaky.at("/slack"), 30, what="slack and e-mail despite a dead channel")
        wait_for(lambda: len(flaky.at("/hook")) >= 4, 30, what="webhook retried until it answered 2xx")
        with engine.connect() as conn:
            rows = {d["channel"]: d for d in store.deliveries(conn, alert.alert_id)}
        assert set(rows) == {"dead_webhook", "webhook", "slack", "email"}
        wait_for(lambda: _status(engine, alert, "webhook") == "delivered", 10, what="webhook delivered")
        hooks = flaky.at("/hook")
        assert len({r.headers["idempotency-key"] for r in hooks}) == 1  # the same event every time
        assert all(r.json()["alert"]["alert_id"] == str(alert.alert_id) for r in hooks)
        assert len(box.messages) == 1 and len(flaky.at("/slack")) == 1
        assert _status(engine, alert, "dead_webhook") == "pending"  # kept, not lost
        later = Receiver(port=dead_port)  # the dead receiver comes back
        wait_for(lambda: later.at("/hook"), 30, what="the dead channel delivered once it was back")
        wait_for(lambda: _status(engine, alert, "dead_webhook") == "delivered", 10, what="marked delivered")
        with engine.connect() as conn:
            attempts = {d["channel"]: d["attempts"] for d in store.deliveries(conn, alert.alert_id)}
        assert attempts["dead_webhook"] >= 2 and attempts["webhook"] == 4 and attempts["slack"] == 1
    finally:
        dispatcher.stop()
        flaky.close()
        box.stop()
        if later is not None:
            later.close()
        engine.dispose()


def _status(engine: Engine, alert: AlertState, channel: str) -> str:
    with engine.connect() as conn:
        return next(d["status"] for d in store.deliveries(conn, alert.alert_id) if d["channel"] == channel)


def _cli(url: str, *args: str) -> Any:
    """``feedback alerts ...`` in this process (the real Typer app; the warehouse from the environment)."""
    from typer.testing import CliRunner

    from pipeline import cli

    result = CliRunner().invoke(cli.app, ["alerts", *args], env={"FEEDBACK_WAREHOUSE_URL": url})
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def test_corrective_action_from_the_cli_is_kept_as_history_and_notified(alert_db: str) -> None:
    engine = make_engine(alert_db)
    receiver = Receiver()
    dispatcher = Dispatcher(engine, [WebhookChannel(receiver.url("/hook"), 5.0)], retry_initial=0.3, poll=0.1,
                            notify_alerts=True)
    try:
        alert = _open_alert(engine, "billing")
        listed = _cli(alert_db, "list", "--alerts", "--status", "open", "--json")
        assert [json.loads(line)["alert_id"] for line in listed.stdout.splitlines()] == [str(alert.alert_id)]
        prefix = str(alert.alert_id)[:8]
        assert "acknowledged" in _cli(alert_db, "ack", prefix, "--by", "anna", "--note", "courier contacted").stdout
        assert _cli(alert_db, "list", "--alerts", "--status", "open", "--json").stdout == ""
        _cli(alert_db, "resolve", str(alert.alert_id), "--by", "anna", "--note", "switched courier")
        with engine.connect() as conn:
            hist = store.history(conn, alert.alert_id)
            row = conn.execute(select(AlertRow.__table__).where(AlertRow.alert_id == alert.alert_id)).one()
        assert [(h["action"], h["actor"], h["note"]) for h in hist] == [
            ("opened", "detector", None), ("acknowledged", "anna", "courier contacted"),
            ("resolved", "anna", "switched courier")]
        assert (row.status, row.resolved_by, row.acknowledged_by) == ("resolved", "anna", "anna")
        shown = _cli(alert_db, "history", prefix).stdout
        assert "courier contacted" in shown and "switched courier" in shown

        # the command line proper: a refused action is exit code 2 with a clear message
        env = {**os.environ, "FEEDBACK_WAREHOUSE_URL": alert_db}
        again = subprocess.run([sys.executable, "-m", "pipeline", "alerts", "resolve", prefix, "--note", "twice"],
                               env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 2 and "already resolved" in " ".join(again.stderr.split())

        dispatcher.start()  # the running sink tells the channels about the operators' actions
        wait_for(lambda: len(receiver.at("/hook")) == 3, 30, what="opened, acknowledged, resolved notified")
        events = [r.json()["event"] for r in receiver.at("/hook")]
        assert events == ["opened", "acknowledged", "resolved"]
        assert receiver.at("/hook")[2].json()["alert"]["actor"] == "anna"
        assert receiver.at("/hook")[2].json()["alert"]["note"] == "switched courier"
    finally:
        dispatcher.stop()
        receiver.close()
        engine.dispose()


def test_alert_gauges_follow_the_warehouse(alert_db: str) -> None:
    engine = make_engine(alert_db)
    scope = f"gauge-{uuid.uuid4().hex[:6]}"
    dispatcher = Dispatcher(engine, [])
    try:
        alert = _open_alert(engine, scope)
        labels = {"signal": "negative_share", "scope_type": "category", "scope_value": scope, "severity": "warning"}
        dispatcher.refresh_gauges()
        assert REGISTRY.get_sample_value("feedback_alert_active", labels) == 1.0
        with engine.begin() as conn:
            store.operator_action(conn, alert.alert_id, "resolved", "ops", "done", datetime.now(UTC))
        dispatcher.refresh_gauges()
        assert REGISTRY.get_sample_value("feedback_alert_active", labels) == 0.0
    finally:
        engine.dispose()


def test_a_channel_down_for_a_long_outage_and_a_restart_loses_nothing(alert_db: str) -> None:
    """A receiver down through dozens of retries (minutes at production backoff, compressed here by a
    short backoff cap) and an alert sink restarted mid-outage: the event stays pending in the
    warehouse and is delivered exactly once when the receiver returns."""
    engine = make_engine(alert_db)
    port = free_port()
    first = Dispatcher(engine, [WebhookChannel(f"http://127.0.0.1:{port}/hook", 1.0)], retry_initial=0.02,
                       retry_max=0.1, poll=0.05, notify_alerts=True)
    back: Receiver | None = None
    second: Dispatcher | None = None
    try:
        alert = _open_alert(engine, "billing")
        first.start()

        def attempts() -> int:
            with engine.connect() as conn:
                return next((d["attempts"] for d in store.deliveries(conn, alert.alert_id)
                             if d["channel"] == "webhook"), 0)  # 0 until the pump made the row

        wait_for(lambda: attempts() >= 30, 60, what="thirty failed attempts")
        first.stop()  # the alert sink restarts while the receiver is still down
        assert _status(engine, alert, "webhook") == "pending"
        second = Dispatcher(engine, [WebhookChannel(f"http://127.0.0.1:{port}/hook", 1.0)], retry_initial=0.02,
                            retry_max=0.1, poll=0.05, notify_alerts=True)
        second.start()
        back = Receiver(port=port)
        wait_for(lambda: _status(engine, alert, "webhook") == "delivered", 30, what="delivered after the outage")
        time.sleep(0.5)
        hooks = back.at("/hook")
        assert len(hooks) == 1 and hooks[0].json()["alert"]["alert_id"] == str(alert.alert_id)
    finally:
        first.stop()
        if second is not None:
            second.stop()
        if back is not None:
            back.close()
        engine.dispose()
