"""The warehouse writer on a real SQLite file: idempotent upserts, categories replaced, last wins."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment
from sinks.warehouse.db import current_revisions, head_revisions, make_engine, migrate
from sinks.warehouse.writer import WarehouseWriter


def item(ref: str, text_: str = "late delivery", cats: tuple[str, ...] = ("delivery",)) -> EnrichedFeedback:
    return EnrichedFeedback(
        source_ref=ref, text=text_, nps_score=3,
        sentiment=Sentiment(polarity=-0.3, subjectivity=0.6, label="negative"),
        categories=[CategoryTag(name=c, confidence=0.7) for c in cats], nps_class="detractor",
    )


def test_upsert_is_idempotent_and_replaces_categories(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    migrate(engine)  # safe at every start
    assert set(current_revisions(engine)) == set(head_revisions())
    writer = WarehouseWriter(engine)
    assert writer.write([item("a"), item("b")]) == 2
    assert writer.write([item("a"), item("b")]) == 2
    writer.write([item("a", "now about billing", ("billing", "pricing"))])
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from feedback")).scalar_one() == 2
        assert conn.execute(text("select text from feedback where source_ref='a'")).scalar_one() == "now about billing"
        cats = conn.execute(text(
            "select c.category from feedback_categories c join feedback f using (feedback_id) "
            "where f.source_ref='a' order by rank")).scalars().all()
        assert cats == ["billing", "pricing"]
        primary = conn.execute(text("select primary_category from feedback where source_ref='a'")).scalar_one()
        assert primary == "billing"


def test_last_version_in_a_batch_wins(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    migrate(engine)
    assert WarehouseWriter(engine).write([item("a", "first"), item("a", "second")]) == 1
    with engine.connect() as conn:
        assert conn.execute(text("select text from feedback")).scalar_one() == "second"
