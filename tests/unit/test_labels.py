"""Analyst corrections in a real (SQLite) warehouse, and the versioned category model's gate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from pipeline.config import LearningSettings
from pipeline.errors import ConfigError
from processors.learning.source import sentiment_rows
from processors.model_store import ModelStore
from sinks.warehouse.db import make_engine, migrate
from sinks.warehouse.labels import apply, parse_correction, read_corrections
from sinks.warehouse.models import Feedback, FeedbackCategory

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def warehouse(tmp_path: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    migrate(engine)
    return engine


def add_item(engine: Engine, body: str, nps: int | None, label: str = "neutral") -> uuid.UUID:
    fid = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(Feedback.__table__.insert().values(
            feedback_id=fid, schema_version=1, source="event", source_ref=f"r-{fid}", text=body, nps_score=nps,
            tags=[], attributes={}, sentiment_polarity=0.0, sentiment_subjectivity=0.0, sentiment_label=label,
            sentiment_analyzer="ensemble", sentiment_model="ensemble", primary_category="other", event_time=NOW,
            event_date=NOW.date(), received_at=NOW, processed_at=NOW, written_at=NOW))
        conn.execute(FeedbackCategory.__table__.insert().values(feedback_id=fid, category="other", confidence=1.0,
                                                                rank=0))
    return fid


def test_a_correction_changes_the_stored_labels_and_overrides_the_weak_label(warehouse: Engine) -> None:
    fid = add_item(warehouse, "The parcel arrived.", nps=9)  # weak label: positive
    other = add_item(warehouse, "Fine.", nps=3)
    assert {(r.item, r.label, r.origin) for r in sentiment_rows(warehouse)} == {
        (fid.hex, "positive", "weak"), (other.hex, "negative", "weak")}
    counts = apply(warehouse, [parse_correction(str(fid), "negative", "delivery; damaged_goods", "ana", "cli")], NOW)
    assert counts == {"sentiment": 1, "category": 1}
    with warehouse.connect() as conn:
        row = conn.execute(text("SELECT sentiment_label, primary_category FROM feedback WHERE source_ref = :r"),
                           {"r": f"r-{fid}"}).one()
        cats = conn.execute(text("SELECT category FROM feedback_categories c JOIN feedback f "
                                 "ON f.feedback_id = c.feedback_id WHERE f.source_ref = :r ORDER BY rank"),
                            {"r": f"r-{fid}"}).scalars().all()
        daily = conn.execute(text("SELECT corrected_date, kind, corrections, analysts FROM v_label_corrections_daily "
                                  "ORDER BY kind")).all()
    assert tuple(row) == ("negative", "delivery") and cats == ["delivery", "damaged_goods"]
    assert [tuple(d)[1:] for d in daily] == [("category", 1, 1), ("sentiment", 1, 1)]
    assert str(daily[0][0]) == "2026-12-07"
    rows = {r.item: r for r in sentiment_rows(warehouse)}
    assert (rows[fid.hex].label, rows[fid.hex].origin) == ("negative", "correction")
    assert sentiment_rows(warehouse, since=datetime(2027, 1, 1).date()) == []


def test_a_bad_corrections_file_changes_nothing(warehouse: Engine, tmp_path: Path) -> None:
    fid = add_item(warehouse, "Late again.", nps=2)
    f = tmp_path / "c.csv"
    f.write_text(f"feedback_id,sentiment\n{fid},positive\n{uuid.uuid4()},negative\n")
    corrections = read_corrections(f, "ana")
    with pytest.raises(ConfigError, match=r"c\.csv line 3: no feedback"):
        apply(warehouse, corrections)
    with warehouse.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM feedback_labels")).scalar_one() == 0
        assert conn.execute(text("SELECT sentiment_label FROM feedback")).scalar_one() == "neutral"
    f.write_text(f"feedback_id,sentiment\n{fid},furious\n")
    with pytest.raises(ConfigError, match="line 2: unknown sentiment 'furious'"):
        read_corrections(f, "ana")
    f.write_text(f"id,mood\n{fid},negative\n")
    with pytest.raises(ConfigError, match="needs the columns feedback_id"):
        read_corrections(f, "ana")
    with pytest.raises(ConfigError, match="not a feedback id"):
        parse_correction("42", "negative", None, "ana", "cli")
    with pytest.raises(ConfigError, match="nothing to correct"):
        parse_correction(str(fid), None, None, "ana", "cli")


def test_category_models_are_versioned_and_gated(tmp_path: Path) -> None:
    from processors.learning.categories import train_categories

    settings = LearningSettings(data_dir=tmp_path)
    texts, labels = [], []
    for i in range(40):  # categories the shipped taxonomy does not know
        texts.append(f"The sprocket widget {i} jammed in the gearbox again")
        labels.append(["sprockets"])
        texts.append(f"The loyalty stamp card {i} was not stamped at the till")
        labels.append(["loyalty"])
    report = train_categories(texts, labels, settings)
    assert report.kind == "category" and report.n_holdout == 16 and report.current_model == "taxonomy"
    assert report.macro_f1_new > report.macro_f1_current and report.activated
    store = ModelStore(settings.models_path)
    assert store.active("category")["version"] == report.model_version  # type: ignore[index]

    from processors.enrich import Enricher
    from processors.taxonomy import Taxonomy

    enricher = Enricher(Taxonomy.load(), analyzer="ensemble", phone_regions=("GB",), model_dir=settings.models_path)
    assert enricher.assess("My loyalty stamp card was not stamped").categories[0]["name"] == "loyalty"
    again = train_categories(texts, labels, settings)
    assert not again.activated and again.current_model == report.model_version
    with pytest.raises(ConfigError, match="at least two categories"):
        train_categories(texts[:10], labels[:10], settings)
