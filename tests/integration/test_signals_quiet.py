"""A quiet fortnight through the running pipeline: nothing alarms, a sparse scope stays silent, and a
complaint theme no category covers emerges as the one incident.

HTTP service -> broker -> processor -> warehouse sink + alert sink (theme watch every few seconds).
Fifteen days of feedback with daily and weekly seasonality (busy afternoons, quiet nights, quieter
weekends) and a negative share that wobbles by hour but does not shift; a product with five
responses a day; complaints the taxonomy has no category for, steady, plus a gift-voucher complaint
that appears in the last week.
"""

from __future__ import annotations

import math
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for
from tests.integration.test_signals_pipeline import _count, _up

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
DAYS = 15
FINE = ["Delivery was quick and the courier was friendly.", "The invoice was clear and the payment went through.",
        "The parcel came on time, good delivery.", "Billing was simple, the receipt arrived at once."]
BAD = ["The parcel arrived late and the box was crushed, terrible delivery.",
       "I was charged twice and the refund is still missing, awful billing."]
OTHER = ["The store opening hours printed on the door are wrong.", "The music in the shop is far too loud.",
         "The fitting rooms were dirty and smelled bad.", "The parking lot beside the store is always full."]
VOUCHER = ["The gift voucher code is rejected at the till, it says the voucher expired.",
           "My gift voucher was refused at the till again, voucher expired they say.",
           "Gift voucher refused at the till, expired voucher although it is new."]


def quiet_fortnight(run: str) -> list[dict[str, Any]]:
    rng = random.Random(20260302)
    out: list[dict[str, Any]] = []
    for h in range(DAYS * 24):
        start = T0 + timedelta(hours=h)
        hod, dow = h % 24, (h // 24) % 7
        mean = 30 * (0.25 + max(0.0, math.sin(math.pi * (hod - 6) / 16))) * (0.6 if dow >= 5 else 1.0)
        share = 0.2 + 0.04 * math.sin(2 * math.pi * hod / 24)
        batch = [{"text": rng.choice(BAD if rng.random() < share else FINE)} for _ in range(round(mean))]
        if rng.random() < 5 / 24:  # the sparse product: about five responses a day, as negative as the rest
            batch.append({"text": rng.choice(BAD if rng.random() < 0.2 else FINE), "product": "gizmo"})
        if h % 4 == 1:
            batch.append({"text": rng.choice(OTHER)})
        if h >= (DAYS - 7) * 24 and h % 3 == 0:
            batch.append({"text": rng.choice(VOUCHER)})
        for i, item in enumerate(batch):
            item.update(source_ref=f"{run}-{h}-{i}",
                        event_time=(start + timedelta(seconds=rng.uniform(0, 3599))).isoformat())
        out += sorted(batch, key=lambda r: r["event_time"])
    return out


def test_quiet_fortnight_sparse_scope_and_an_emerging_theme(kafka_bootstrap: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    p = Pipeline(kafka_bootstrap, url, engine, tmp_path)
    p.env.update({"FEEDBACK_SIGNAL_ALLOWED_LATENESS": "10m", "FEEDBACK_ALERT_THEME_WATCH_SECONDS": "5"})
    try:
        for name in ("alerts", "sink", "processor", "http"):
            p.start(name)
        wait_for(lambda: _up(p.url), 90, what="http service")
        records = quiet_fortnight(uuid.uuid4().hex[:8])
        with httpx.Client(base_url=p.url, timeout=60) as client:
            for i in range(0, len(records), 500):
                r = client.post("/v1/events", json=records[i:i + 500])
                assert r.status_code == 202, r.text
        # every hour but the last few is judged
        wait_for(lambda: _count(engine, "SELECT count(*) FROM signal_windows WHERE scope_type='overall'")
                 >= DAYS * 24 - 3, 240, interval=1.0, what="the hourly overall windows")

        def incidents() -> list[Any]:
            try:
                with engine.connect() as conn:
                    return list(conn.execute(text("SELECT kind, driver_scope_type, driver_scope_value, summary, "
                                                  "examples FROM incidents")))
            except Exception:  # tables not there yet
                return []

        found = wait_for(lambda: incidents() or None, 120, interval=1.0, what="the emerging-theme incident")
        with engine.connect() as conn:
            alerts = conn.execute(text("SELECT signal, scope_type, scope_value, first_window_start, summary "
                                       "FROM alerts")).all()
        assert len(found) == 1, (found, alerts)
        [theme] = found
        assert theme.kind == "emerging_theme" and "voucher" in theme.driver_scope_value, theme
        assert "complaints in the last week" in theme.summary
        with engine.connect() as conn:
            sparse = conn.execute(text("SELECT count(*), sum(volume) FROM signal_windows "
                                       "WHERE scope_type='product' AND scope_value='gizmo'")).one()
            judged = conn.execute(text("SELECT count(*) FROM signal_windows WHERE scope_type='category' "
                                       "AND detection LIKE '%cusum%'")).scalar()
        assert alerts == []  # a quiet fortnight with seasonality: no alert on any scope
        assert sparse[0] >= DAYS - 2 and sparse[1] < 10 * DAYS  # the sparse product was windowed, never alarmed
        assert judged and judged > 24 * 3  # the small categories were judged (by the count chart)
        assert incidents() == [theme]  # the watch ran many times and opened it once
    finally:
        p.stop()
        engine.dispose()


def slow_drift(run: str, days: int = 24, start: int = 10, length: int = 14) -> list[dict[str, Any]]:
    """10 delivery + 10 billing responses an hour; delivery's negative share drifts 20 % -> 50 % over two weeks."""
    rng = random.Random(7)
    out: list[dict[str, Any]] = []
    for h in range(days * 24):
        at = T0 + timedelta(hours=h)
        share = 0.2 + 0.3 * min(1.0, max(0.0, (h / 24 - start) / length))
        batch = [{"text": rng.choice(BAD[:1] if rng.random() < share else FINE[::2])} for _ in range(10)]
        batch += [{"text": rng.choice(BAD[1:] if rng.random() < 0.2 else FINE[1::2])} for _ in range(10)]
        for i, item in enumerate(batch):
            when = at + timedelta(seconds=rng.uniform(0, 3599))
            item.update(source_ref=f"{run}-{h}-{i}", event_time=when.isoformat())
        out += sorted(batch, key=lambda r: r["event_time"])
    return out


def test_a_slow_drift_is_one_delivery_incident_during_the_drift(kafka_bootstrap: str, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    engine = make_engine(url)
    p = Pipeline(kafka_bootstrap, url, engine, tmp_path)
    p.env.update({"FEEDBACK_SIGNAL_ALLOWED_LATENESS": "10m", "FEEDBACK_ALERT_THEME_WATCH_SECONDS": "0"})
    try:
        for name in ("alerts", "processor", "http"):
            p.start(name)
        wait_for(lambda: _up(p.url), 90, what="http service")
        records = slow_drift(uuid.uuid4().hex[:8])
        with httpx.Client(base_url=p.url, timeout=60) as client:
            for i in range(0, len(records), 500):
                r = client.post("/v1/events", json=records[i:i + 500])
                assert r.status_code == 202, r.text
        wait_for(lambda: _count(engine, "SELECT count(*) FROM signal_windows WHERE scope_type='overall'")
                 >= 24 * 24 - 3, 300, interval=1.0, what="the hourly overall windows")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT kind, driver_scope_type, driver_scope_value, started_at, opened_at "
                                     "FROM incidents")).all()
            first = conn.execute(text("SELECT min(first_window_start) FROM alerts")).scalar()
        assert len(rows) == 1, rows
        [inc] = rows
        assert (inc.kind, inc.driver_scope_type, inc.driver_scope_value) == ("signal", "category", "delivery")
        drift = T0 + timedelta(days=10)
        started = datetime.fromisoformat(str(inc.started_at)).replace(tzinfo=UTC)
        alarmed = datetime.fromisoformat(str(first)).replace(tzinfo=UTC)
        assert drift <= alarmed <= drift + timedelta(days=14), alarmed  # caught during the drift, not before
        assert drift - timedelta(days=1) <= started <= alarmed, started
    finally:
        p.stop()
        engine.dispose()
