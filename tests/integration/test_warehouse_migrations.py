"""Migrations on SQLite and PostgreSQL: up from empty, and up from each earlier revision with data in it.

Whatever revision a warehouse is at, ``migrate`` brings it to every head with the same tables,
columns, indexes and views as a warehouse migrated from empty; a feedback row written at the
oldest revision is still there and shows in the views and the customers table afterwards.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, Table, inspect, text

from sinks.warehouse.db import alembic_config, current_revisions, head_revisions, migrate
from sinks.warehouse.models import Feedback, FeedbackCategory
from tests.integration.warehouse_data import DIALECTS, fresh_engine

pytestmark = pytest.mark.integration

SCRIPT = ScriptDirectory.from_config(alembic_config())
REVISIONS = sorted(r.revision for r in SCRIPT.walk_revisions())


def applied(start: str) -> set[str]:
    return {r.revision for r in SCRIPT.iterate_revisions(start, "base")}
VIEWS = {"v_feedback", "v_daily_sentiment", "v_weekly_nps", "v_csat_by_category", "v_csat_by_group",
         "v_top_negative_aspects"}


def snapshot(engine: Engine) -> dict[str, Any]:
    insp = inspect(engine)
    tables = {t: (sorted(c["name"] for c in insp.get_columns(t)), sorted(i["name"] for i in insp.get_indexes(t)))
              for t in insp.get_table_names() if t != "alembic_version"}
    return {"tables": tables, "views": sorted(insp.get_view_names())}


def insert_feedback(engine: Engine) -> uuid.UUID:
    """One feedback row through the table as it is now (any revision from 0001 on)."""
    fid = uuid.uuid4()
    now = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
    with engine.begin() as conn:
        existing = {c["name"] for c in inspect(conn).get_columns("feedback")}
        values = {"feedback_id": fid, "schema_version": 1, "source": "event", "source_ref": f"m-{fid}",
                  "customer_ref": "c_migrated", "text": "Parcel was late", "nps_score": 2, "nps_class": "detractor",
                  "tags": [], "attributes": {}, "sentiment_polarity": -0.4, "sentiment_subjectivity": 0.5,
                  "sentiment_label": "negative", "sentiment_analyzer": "textblob", "primary_category": "delivery",
                  "event_time": now, "event_date": now.date(), "received_at": now, "processed_at": now,
                  "written_at": now}
        table = Table("feedback", MetaData(), *[c._copy() for c in Feedback.__table__.columns if c.name in existing])
        conn.execute(table.insert().values({k: v for k, v in values.items() if k in table.c}))
        conn.execute(FeedbackCategory.__table__.insert().values(feedback_id=fid, category="delivery", confidence=0.9,
                                                                rank=0))
    return fid


@pytest.fixture(scope="module", params=DIALECTS)
def reference(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    with fresh_engine(request.param, tmp_path_factory.mktemp("mig"), migrated=False) as engine:
        migrate(engine)
        assert set(current_revisions(engine)) == set(head_revisions())
        yield request.param, snapshot(engine)


def test_up_from_empty_has_every_table_and_view(reference: Any) -> None:
    _, snap = reference
    assert set(snap["views"]) >= VIEWS
    assert {"feedback", "feedback_categories", "customers", "retention_log"} <= set(snap["tables"])
    assert "ix_feedback_category_date" in snap["tables"]["feedback"][1]


@pytest.mark.parametrize("start", REVISIONS)
def test_up_from_each_earlier_revision(reference: Any, start: str, tmp_path: Path) -> None:
    kind, snap = reference
    with fresh_engine(kind, tmp_path, migrated=False) as engine:
        migrate(engine, start)
        assert start in current_revisions(engine)
        fid = insert_feedback(engine)
        migrate(engine)
        assert set(current_revisions(engine)) == set(head_revisions())
        assert snapshot(engine) == snap
        with engine.connect() as conn:
            row = conn.execute(text("SELECT event_month, age_days FROM v_feedback WHERE source_ref = :r"),
                               {"r": f"m-{fid}"}).one()
            assert row.event_month == "2025-03" and row.age_days > 200
            assert conn.execute(text("SELECT negative, volume FROM v_daily_sentiment")).one() == (1, 1)
            customers = conn.execute(text("SELECT customer_ref, feedback_count, detractors FROM customers")).all()
            # 0006 derives customers of the feedback already there; after it, the sink keeps them
            expected = [] if "0006_analytics" in applied(start) else [("c_migrated", 1, 1)]
            assert [tuple(c) for c in customers] == expected
        migrate(engine)  # and again: nothing to do
        assert snapshot(engine) == snap


@pytest.mark.parametrize("kind", DIALECTS)
def test_v_feedback_shows_every_column_of_feedback(kind: str, tmp_path: Path) -> None:
    """On PostgreSQL a view's ``f.*`` is fixed when it is created: the last revision recreates it."""
    with fresh_engine(kind, tmp_path, migrated=False) as engine:
        migrate(engine)
        insp = inspect(engine)
        table = {c["name"] for c in insp.get_columns("feedback")}
        view = {c["name"] for c in insp.get_columns("v_feedback")}
        assert {"sentiment_model", "origin"} <= table
        assert table <= view, table - view


@pytest.mark.parametrize("kind", DIALECTS)
def test_a_table_rebuild_keeps_the_child_rows(kind: str, tmp_path: Path) -> None:
    """0012 rebuilds ``feedback`` on SQLite: the categories of a stored item must survive it."""
    with fresh_engine(kind, tmp_path, migrated=False) as engine:
        migrate(engine, "0007_views")
        fid = insert_feedback(engine)
        migrate(engine)
        with engine.connect() as conn:
            cats = conn.execute(text("SELECT category FROM feedback_categories WHERE feedback_id = :f"),
                                {"f": fid if kind == "postgresql" else fid.hex}).scalars().all()
        assert cats == ["delivery"]
