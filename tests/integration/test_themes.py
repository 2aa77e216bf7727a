"""Emerging themes on SQLite and PostgreSQL: complaints tagged ``other`` clustered offline, a theme
injected in the last week found with its key phrase, a stable id, an ``emerging_theme`` incident
opened once and resolved by the watch once the theme goes quiet (its trail kept), ``feedback themes
--since --json``, and clusters inside one category (``--category``)."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from typer.testing import CliRunner

from pipeline import cli
from sinks.alerts import incidents, themes
from sinks.warehouse.db import make_engine
from sinks.warehouse.models import Feedback, FeedbackCategory
from tests.integration.test_alert_sink import alert_db  # noqa: F401  (the SQLite/PostgreSQL fixture)

T0 = datetime(2026, 2, 2, tzinfo=UTC)
STEADY = [
    "The app {v} when I open my {o}.", "Your website {v} every time I check my {o}.",
    "I waited {n} minutes on the phone line and nobody answered about my {o}.",
    "The hold music on the phone line lasted {n} minutes, still no answer on my {o}.",
    "My {o} shows the wrong price, the discount was not applied.",
    "The discount code was not applied to my {o}, wrong price charged.",
]
NEW = ["The gift card code is rejected at checkout, says {e}.", "Gift card rejected again at checkout: {e}.",
       "Could not redeem my gift card at checkout, error {e}.", "Checkout refuses the gift card code ({e})."]
FILL = {"v": ["crashes", "freezes", "hangs", "stalls"], "o": ["order", "account", "basket", "subscription"],
        "n": ["20", "35", "45", "50"], "e": ["invalid code", "code expired", "error 402", "try again later"]}


def _text(rng: random.Random, template: str) -> str:
    return template.format(**{k: rng.choice(v) for k, v in FILL.items()})


def store(engine: Any, items: list[tuple[datetime, str]], category: str = "other") -> None:
    rows, cats = [], []
    for at, body in items:
        fid = uuid.uuid4()
        rows.append({"feedback_id": fid, "schema_version": 1, "source": "event", "source_ref": str(fid),
                     "text": body, "tags": [], "attributes": {}, "sentiment_polarity": -0.4,
                     "sentiment_subjectivity": 0.5, "sentiment_label": "negative", "sentiment_analyzer": "test",
                     "primary_category": category, "event_time": at, "event_date": at.date(), "received_at": at,
                     "processed_at": at, "written_at": at})
        cats.append({"feedback_id": fid, "category": category, "confidence": 0.5, "rank": 0})
    with engine.begin() as conn:
        conn.execute(insert(Feedback), rows)
        conn.execute(insert(FeedbackCategory), cats)


def five_weeks(seed: int = 4) -> list[tuple[datetime, str]]:
    """Steady 'other' complaints for five weeks; a gift-card theme from nothing in the last week."""
    rng = random.Random(seed)
    out = []
    for day in range(35):
        for _ in range(8):
            out.append((T0 + timedelta(days=day, hours=rng.uniform(8, 20)), _text(rng, rng.choice(STEADY))))
        if day >= 28:
            for _ in range(4):
                out.append((T0 + timedelta(days=day, hours=rng.uniform(8, 20)), _text(rng, rng.choice(NEW))))
    return out


def test_an_injected_theme_emerges_with_its_key_phrase_and_opens_one_incident(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    try:
        store(engine, five_weeks())
        found = themes.themes_since(engine, T0)
        assert len(found) >= 2
        [rising] = themes.emerging(found)
        assert "gift card" in rising.label or "card" in rising.label, rising.label
        assert rising.earlier_share == 0 and rising.recent >= 20 and rising.growth is None
        assert all("gift card" in e.lower() for e in rising.examples)
        steady = [t for t in found if t.theme_id != rising.theme_id]
        assert all(t.earlier_share > 0 for t in steady)  # the steady complaints are not "emerging"
        assert rising.theme_id in {t.theme_id for t in themes.themes_since(engine, T0)}  # stable across runs

        now = T0 + timedelta(days=35)
        with engine.begin() as conn:
            opened = themes.watch(conn, T0, now)
        with engine.begin() as conn:
            assert themes.watch(conn, T0, now) == []  # once
        with engine.connect() as conn:
            [inc] = incidents.list_incidents(conn)
            trail = incidents.history(conn, inc.incident_id)
        assert opened == [inc.incident_id] and inc.kind == "emerging_theme"
        assert inc.driver_scope_type == "theme" and "card" in inc.driver_scope_value
        assert inc.started_at >= T0 + timedelta(days=28) and inc.examples
        assert "Emerging complaint theme" in inc.summary and "complaints in the last week" in inc.summary
        assert [h["action"] for h in trail] == ["opened"] and trail[0]["notified"] is False  # to the outbox

        env = {"FEEDBACK_WAREHOUSE_URL": alert_db}
        listed = CliRunner().invoke(cli.app, ["themes", "--since", T0.date().isoformat(), "--json"], env=env)
        assert listed.exit_code == 0, listed.output
        shown = json.loads(listed.stdout)
        assert [t["emerging"] for t in shown].count(True) == 1
        assert {"theme_id", "label", "size", "growth", "examples"} <= set(shown[0])
        incidents_json = json.loads(CliRunner().invoke(cli.app, ["alerts", "list", "--json"], env=env).stdout)
        assert [i["kind"] for i in incidents_json] == ["emerging_theme"]
    finally:
        engine.dispose()


def steady_weeks(start: datetime, weeks: int, seed: int = 8) -> list[tuple[datetime, str]]:
    rng = random.Random(seed)
    return [(start + timedelta(days=day, hours=rng.uniform(8, 20)), _text(rng, rng.choice(STEADY)))
            for day in range(7 * weeks) for _ in range(8)]


def test_a_theme_incident_resolves_itself_when_the_theme_goes_quiet(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    try:
        store(engine, five_weeks())
        with engine.begin() as conn:
            [iid] = themes.watch(conn, T0, T0 + timedelta(days=35))
        assert themes.run_watch(engine) == []  # still rising: neither reopened nor resolved
        with engine.connect() as conn:
            assert incidents.get(conn, iid).status == "open"  # type: ignore[union-attr]
        store(engine, steady_weeks(T0 + timedelta(days=35), 2))  # two weeks without a gift-card complaint
        assert themes.run_watch(engine) == []
        assert themes.run_watch(engine) == []  # a quiet theme resolves once and does not reopen
        with engine.connect() as conn:
            inc = incidents.get(conn, iid)
            trail = incidents.history(conn, iid)
        assert inc is not None and inc.status == "resolved" and inc.resolved_at is not None
        assert [(h["action"], h["actor"]) for h in trail] == [("opened", "detector"), ("resolved", "detector")]
        assert "went quiet: 0 complaints" in str(trail[1]["note"]) and trail[1]["notified"] is False  # to the outbox
    finally:
        engine.dispose()


DELIVERY = ["The courier left my {o} at the wrong door.", "Delivery of my {o} was {n} minutes late.",
            "The driver threw my {o} over the fence.", "My {o} arrived {n} minutes after the promised slot."]
LOCKER = ["The parcel locker would not open, code {e}.", "Locker door stuck, my parcel locker code gives {e}.",
          "Could not collect from the parcel locker: {e}.", "The parcel locker screen shows {e}."]


def test_themes_inside_one_category(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    rng = random.Random(12)
    try:
        store(engine, five_weeks())  # the 'other' complaints stay out of a category's clustering
        inside = [(T0 + timedelta(days=d, hours=rng.uniform(8, 20)), _text(rng, rng.choice(DELIVERY)))
                  for d in range(35) for _ in range(8)]
        inside += [(T0 + timedelta(days=d, hours=rng.uniform(8, 20)), _text(rng, rng.choice(LOCKER)))
                   for d in range(28, 35) for _ in range(4)]
        store(engine, inside, category="delivery")
        env = {"FEEDBACK_WAREHOUSE_URL": alert_db}
        args = ["themes", "--since", T0.date().isoformat(), "--json", "--category", "delivery"]
        listed = CliRunner().invoke(cli.app, args, env=env)
        assert listed.exit_code == 0, listed.output
        shown = json.loads(listed.stdout)
        [rising] = [t for t in shown if t["emerging"]]
        assert "locker" in rising["label"] and all("locker" in e.lower() for e in rising["examples"])
        assert not any("gift" in t["label"] for t in shown)  # only the delivery complaints were clustered
        none = CliRunner().invoke(cli.app, ["themes", "--since", T0.date().isoformat(), "--category", "billing"],
                                  env=env)
        assert none.exit_code == 0 and "too few complaints in category 'billing'" in none.stdout
    finally:
        engine.dispose()
