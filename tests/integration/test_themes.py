"""Emerging themes on SQLite and PostgreSQL: complaints tagged ``other`` clustered offline, a theme
injected in the last week found with its key phrase, a stable id, an ``emerging_theme`` incident
opened once and resolved by the watch once the theme goes quiet (its trail kept), ``feedback themes
--since --json``, and clusters inside one category (``--category``). The watch inside a category: a
new cluster opens its own incident naming the category, or is attached (once) to an active incident
driven by that category; a category whose complaints all grow alike opens nothing."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert
from typer.testing import CliRunner

from pipeline import cli
from sinks.alerts import incidents, theme_watch, themes
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
            opened = theme_watch.watch(conn, T0, now).opened
        with engine.begin() as conn:
            assert not theme_watch.watch(conn, T0, now)  # once
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
            [iid] = theme_watch.watch(conn, T0, T0 + timedelta(days=35)).opened
        assert not theme_watch.run_watch(engine)  # still rising: neither reopened nor resolved
        with engine.connect() as conn:
            assert incidents.get(conn, iid).status == "open"  # type: ignore[union-attr]
        store(engine, steady_weeks(T0 + timedelta(days=35), 2))  # two weeks without a gift-card complaint
        done = theme_watch.run_watch(engine)
        assert done.resolved == [iid] and done.opened == [] and done.attached == []
        assert not theme_watch.run_watch(engine)  # a quiet theme resolves once and does not reopen
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


LOCKER_CODE = ["The parcel locker code never arrived, my {o} is stuck in the locker.",
               "Still no parcel locker code by text message, {e}.",
               "The locker code never came, I cannot collect my {o} from the parcel locker.",
               "No pick-up code for the parcel locker, the app says {e}."]


def delivery_weeks(start: datetime, weeks: int, locker_days: range = range(0), seed: int = 21,
                   per_day: int = 8) -> list[tuple[datetime, str]]:
    """Steady delivery complaints (``per_day``); two a day about a parcel-locker code on ``locker_days``."""
    rng = random.Random(seed)
    out = []
    for day in range(7 * weeks):
        at = [start + timedelta(days=day, hours=rng.uniform(8, 20)) for _ in range(per_day)]
        out += [(t, _text(rng, rng.choice(DELIVERY))) for t in at]
        if day in locker_days:
            out += [(start + timedelta(days=day, hours=rng.uniform(8, 20)), _text(rng, rng.choice(LOCKER_CODE)))
                    for _ in range(2)]
    return out


def locker_month(engine: Any) -> None:
    """Five weeks: steady ``other`` and ``delivery`` complaints, a parcel-locker code theme inside
    ``delivery`` from nothing in the last week (14 of 70 delivery complaints), and a sparse ``pricing``
    category (below the watch's floor) whose complaints are all new in the last week."""
    store(engine, steady_weeks(T0, 5))
    store(engine, delivery_weeks(T0, 5, locker_days=range(28, 35)), category="delivery")
    rng = random.Random(5)
    store(engine, [(T0 + timedelta(days=d, hours=rng.uniform(8, 20)), f"The price of my {o} went up again.")
                   for d in range(28, 35) for o in ("order", "plan")], category="pricing")


def _delivery_incident(conn: Any, at: datetime) -> uuid.UUID:
    """An open signal incident driven by ``category=delivery`` (as the detector opens one)."""
    iid = uuid.uuid4()
    conn.execute(incidents.INC.insert().values(
        incident_id=iid, kind="signal", status="open", severity="warning", driver_scope_type="category",
        driver_scope_value="delivery", signals=["negative_share"], explained_share=0.8, started_at=at,
        opened_at=at, updated_at=at, summary="Negative share of delivery feedback 45% vs 20% usual.",
        examples=["The courier left my order at the wrong door."]))
    return iid


def test_a_new_cluster_inside_a_category_opens_one_incident_naming_it(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    try:
        locker_month(engine)
        now = T0 + timedelta(days=35)
        with engine.begin() as conn:
            done = theme_watch.watch(conn, T0, now)
        assert done.scopes == ["other", "delivery"]  # pricing: 14 complaints last week, below the floor
        with engine.begin() as conn:
            assert not theme_watch.watch(conn, T0, now)  # once
        with engine.connect() as conn:
            [inc] = incidents.list_incidents(conn)
            trail = incidents.history(conn, inc.incident_id)
        assert done.opened == [inc.incident_id] and done.attached == [] and inc.kind == "emerging_theme"
        assert inc.driver_scope_type == "theme" and inc.driver_scope_value.startswith("delivery: ")
        assert "locker" in inc.driver_scope_value, inc.driver_scope_value
        rising = [t for t in themes.themes_since(engine, T0, "delivery") if "locker" in t.label]
        assert [theme_watch.incident_id("delivery", t) for t in rising] == [inc.incident_id]  # stable id
        assert "inside delivery" in inc.summary and "of delivery complaints, new this week" in inc.summary
        assert "14 complaints in the last week, 20% of delivery complaints" in inc.summary, inc.summary
        assert inc.examples and all("locker" in e.lower() for e in inc.examples)
        assert inc.started_at >= T0 + timedelta(days=28) and [h["action"] for h in trail] == ["opened"]

        store(engine, steady_weeks(T0 + timedelta(days=35), 2))  # two weeks without a locker complaint
        store(engine, delivery_weeks(T0 + timedelta(days=35), 2, seed=22), category="delivery")
        assert theme_watch.run_watch(engine).resolved == [inc.incident_id]
        assert not theme_watch.run_watch(engine)  # resolved once, never reopened
        with engine.connect() as conn:
            after = incidents.get(conn, inc.incident_id)
            trail = incidents.history(conn, inc.incident_id)
        assert after is not None and after.status == "resolved"
        assert [(h["action"], h["actor"]) for h in trail] == [("opened", "detector"), ("resolved", "detector")]
        assert "went quiet: 0 complaints" in str(trail[1]["note"])
    finally:
        engine.dispose()


def test_a_cluster_inside_a_category_with_an_open_incident_is_attached_to_it_once(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    try:
        locker_month(engine)
        now = T0 + timedelta(days=35)
        with engine.begin() as conn:
            iid = _delivery_incident(conn, T0 + timedelta(days=30))
            done = theme_watch.watch(conn, T0, now)
        assert done.attached == [iid] and done.opened == []
        with engine.begin() as conn:
            incidents.operator_action(conn, iid, "acknowledged", "ops", None, now)
        assert not theme_watch.run_watch(engine)  # acknowledged: still the theme's incident, noted once
        with engine.connect() as conn:
            [inc] = incidents.list_incidents(conn)
            trail = incidents.history(conn, iid)
        assert inc.incident_id == iid and inc.kind == "signal"  # no second incident
        notes = [h for h in trail if h["action"] == "note"]
        assert [(h["actor"], h["notified"]) for h in notes] == [("detector", False)]  # one, to the outbox
        assert "locker" in notes[0]["note"] and "inside delivery" in notes[0]["note"], notes[0]["note"]
        assert "14 complaints in the last week, 20% of delivery complaints, new this week" in notes[0]["note"]
        assert inc.examples[0] == "The courier left my order at the wrong door."  # kept, the theme's added
        assert len(inc.examples) > 1 and all("locker" in e.lower() for e in inc.examples[1:])

        with engine.begin() as conn:  # the category incident is over, the theme is still new: its own now
            incidents.operator_action(conn, iid, "resolved", "ops", None, now)
        opened = theme_watch.run_watch(engine).opened
        with engine.connect() as conn:
            theme = incidents.get(conn, opened[0]) if len(opened) == 1 else None
        assert theme is not None and theme.kind == "emerging_theme" and "locker" in theme.driver_scope_value
    finally:
        engine.dispose()


def test_a_category_whose_complaints_all_triple_alike_opens_nothing(alert_db: str) -> None:  # noqa: F811
    engine = make_engine(alert_db)
    rng = random.Random(31)
    try:
        tripled = [(T0 + timedelta(days=d, hours=rng.uniform(8, 20)), _text(rng, rng.choice(STEADY)))
                   for d in range(35) for _ in range(18 if d >= 28 else 6)]
        store(engine, tripled, category="billing")
        found = themes.themes_since(engine, T0, "billing")
        # each cluster's count tripled and passes the count and share thresholds: only its share of
        # billing's own complaints, unchanged, keeps it from emerging
        grown = [t for t in found if t.recent >= themes.MIN_RECENT and t.recent_share >= themes.MIN_SHARE
                 and t.recent >= 2.5 * (t.size - t.recent) / 4]
        assert len(grown) >= 2, [t.to_json() for t in found]
        assert all(0.5 < t.recent_share / t.earlier_share < 2 for t in grown)  # within billing: steady
        done = theme_watch.run_watch(engine)
        assert done.scopes == ["other", "billing"] and not done
        with engine.connect() as conn:
            assert incidents.list_incidents(conn) == []
    finally:
        engine.dispose()
