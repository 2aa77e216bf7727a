"""The sink's bulk write path against the plain one, on SQLite and PostgreSQL, and the customers table.

The bulk path (COPY + INSERT ... SELECT ... ON CONFLICT on PostgreSQL, a prepared executemany on
SQLite) must leave exactly what one statement per row leaves, awkward text included; writing the
same records again changes nothing; ``customers`` always equals an aggregate of ``feedback``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment
from sinks.warehouse import bulk
from sinks.warehouse.analytics import refresh_customer_refs
from sinks.warehouse.models import Feedback
from sinks.warehouse.writer import WarehouseWriter, feedback_columns
from tests.bench.sink_stage import write_one_at_a_time
from tests.bench.warehouse_samples import enriched_sample
from tests.integration.warehouse_data import DIALECTS, fresh_engine

pytestmark = pytest.mark.integration

AWKWARD = ["tab\there", "new\nline", "back\\slash \\N", "quote \" and '", "ünïcødé \u2013 🚚", "comma, semi; pipe|"]


def records() -> list[EnrichedFeedback]:
    items = enriched_sample(150, seed=3, run="bulk", days=20, customers=30)
    for n, odd in enumerate(AWKWARD):
        items.append(EnrichedFeedback(
            source_ref=f"odd-{n}", text=f"The courier {odd}", subject=odd, customer_ref="c_" + "0dd0" * 8, nps_score=n,
            product=odd, tags=[odd, "x"], attributes={"note": odd, "n": n, "ok": True, "none": None, "f": 1.5},
            sentiment=Sentiment(polarity=-0.5, subjectivity=0.3, label="negative"),
            categories=[CategoryTag(name="delivery", confidence=0.8)], nps_class="detractor"))
    return items


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        feedback = conn.execute(text("SELECT * FROM feedback ORDER BY feedback_id")).mappings().all()
        cats = conn.execute(text("SELECT * FROM feedback_categories ORDER BY feedback_id, category")).all()
        customers = conn.execute(text("SELECT * FROM customers ORDER BY customer_ref")).mappings().all()
        aspects = conn.execute(text("SELECT * FROM feedback_aspects ORDER BY feedback_id, sentence, category")).all()
    return {
        "aspects": [tuple(r) for r in aspects],
        "feedback": [tuple(v for k, v in r.items() if k != "written_at") for r in feedback],
        "categories": [tuple(r) for r in cats],
        "customers": [tuple(v for k, v in r.items() if k != "updated_at") for r in customers],
    }


@pytest.mark.parametrize("kind", DIALECTS)
def test_bulk_path_writes_what_one_row_at_a_time_writes(kind: str, tmp_path: Path) -> None:
    items = records()
    with fresh_engine(kind, tmp_path) as simple, fresh_engine(kind, tmp_path) as fast:
        write_one_at_a_time(simple, items)
        writer = WarehouseWriter(fast)
        assert len(items[:100]) >= bulk.COPY_MIN_ROWS  # the COPY path on PostgreSQL
        assert writer.write(items[:100]) == 100
        for item in items[100:]:  # and the small-batch path
            writer.write([item])
        expected = dump(simple)
        assert dump(fast) == expected
        assert len(expected["feedback"]) == len(items)
        writer.write(items)  # again, in one batch: nothing changes
        assert dump(fast) == expected
        with fast.connect() as conn:
            row = conn.execute(text("SELECT text, subject, tags, attributes FROM feedback WHERE source_ref = 'odd-1'"
                                    )).one()
        assert row.text == "The courier new\nline" and row.subject == "new\nline"


@pytest.mark.parametrize("kind", DIALECTS)
def test_customers_equal_an_aggregate_of_feedback(kind: str, tmp_path: Path) -> None:
    items = records()
    with fresh_engine(kind, tmp_path) as engine:
        writer = WarehouseWriter(engine)
        for i in range(0, len(items), 64):
            writer.write(items[i : i + 64])
        # a customer's item is rewritten with another label: the counts follow, never double
        changed = items[0].model_copy(update={"sentiment": Sentiment(polarity=0.6, subjectivity=0.2, label="positive"),
                                              "nps_score": 10, "nps_class": "promoter"})
        writer.write([changed, changed])
        latest = {i.feedback_id: i for i in [*items, changed]}
        per: dict[str, list[EnrichedFeedback]] = defaultdict(list)
        for i in latest.values():
            if i.customer_ref:
                per[i.customer_ref].append(i)
        with engine.connect() as conn:
            got = {r.customer_ref: r for r in conn.execute(text("SELECT * FROM customers"))}
        assert set(got) == set(per)
        for ref, group in per.items():
            row = got[ref]
            assert row.feedback_count == len(group)
            assert row.negative_count == sum(i.sentiment.label == "negative" for i in group)
            assert row.promoters == sum(i.nps_class == "promoter" for i in group)
            assert row.detractors == sum(i.nps_class == "detractor" for i in group)
            assert row.nps_responses == sum(i.nps_score is not None for i in group)
            csat = [i.csat_score for i in group if i.csat_score is not None]
            assert row.csat_responses == len(csat)
            assert (row.csat_mean is None) if not csat else abs(row.csat_mean - sum(csat) / len(csat)) < 1e-9


def customers(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM customers ORDER BY customer_ref")).mappings().all()
    return [tuple(v for k, v in r.items() if k != "updated_at") for r in rows]


@pytest.mark.parametrize("kind", DIALECTS)
def test_new_rows_are_added_to_customers_exactly_as_a_recomputation(kind: str, tmp_path: Path) -> None:
    """All-new batches add their aggregates to the stored customers rows; the result is what
    recomputing every customer from ``feedback`` gives, CSAT mean (a float) included."""
    items = enriched_sample(700, seed=5, run="incr", days=30, customers=40)
    with fresh_engine(kind, tmp_path) as engine:
        writer = WarehouseWriter(engine)
        start = 0
        for size in (1, 5, 90, 300, 304):  # small batches (executemany) and COPY-sized ones, same customers
            writer.write(items[start : start + size])
            start += size
        incremental = customers(engine)
        refs = [r[0] for r in incremental]
        assert len(refs) == 40 and sum(r[3] for r in incremental) == sum(1 for i in items if i.customer_ref)
        with engine.begin() as conn:
            refresh_customer_refs(conn, refs)
        assert customers(engine) == incremental


@pytest.mark.parametrize("kind", DIALECTS)
@pytest.mark.parametrize("size", [3, 80])
def test_insert_new_reports_whether_every_row_was_new(kind: str, size: int, tmp_path: Path) -> None:
    items = enriched_sample(size + 2, seed=9, run="new", days=5)
    with fresh_engine(kind, tmp_path) as engine:
        writer = WarehouseWriter(engine)
        table = Feedback.__table__

        def write(batch: list[EnrichedFeedback]) -> bool:
            with engine.begin() as conn:
                return bulk.insert_new_columns(conn, table, feedback_columns(batch, datetime.now(UTC)),
                                               writer._insert_new_stmt(), writer._upsert_stmt())

        assert write(items[:size]) is True
        assert write(items[:size]) is False  # all stored already: upserted
        changed = items[0].model_copy(update={"text": "changed"})
        assert write([changed, *items[size:]]) is False  # one stored among new ones
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM feedback")).scalar_one() == size + 2
            assert conn.execute(text("SELECT text FROM feedback WHERE source_ref = :r"),
                                {"r": changed.source_ref}).scalar_one() == "changed"


@pytest.mark.parametrize("kind", DIALECTS)
def test_customer_refs_with_quotes_and_commas(kind: str, tmp_path: Path) -> None:
    refs = ['c "quoted"', "c\\back", "c,comma", "{c}", "c c", "NULL"]
    items = [EnrichedFeedback(source_ref=f"q-{n}", text="late", csat_score=n % 5 + 1,
                              sentiment=Sentiment(polarity=-0.5, subjectivity=0.3, label="negative"),
                              categories=[CategoryTag(name="delivery", confidence=0.8)])
             for n in range(len(refs) * 20)]
    for item, ref in zip(items, refs * 20, strict=True):
        item.customer_ref = ref  # the model refuses such references now; rows stored before it may hold them
    with fresh_engine(kind, tmp_path) as engine:
        writer = WarehouseWriter(engine)
        writer.write(items)  # all new: added
        first = customers(engine)
        writer.write(items)  # stored: recomputed (the references go as one array parameter on PostgreSQL)
        assert customers(engine) == first
        assert {r[0]: r[3] for r in first} == dict.fromkeys(refs, 20)


def test_postgresql_staging_table_is_kept_per_session_and_empty_between_batches(tmp_path: Path) -> None:
    """The COPY staging table is created once per session (not per batch) and emptied at every commit
    and rollback: a later batch on the same connection never sees an earlier batch's rows."""
    items = enriched_sample(300, seed=13, run="stage", days=10, customers=30)
    with fresh_engine("postgresql", tmp_path) as engine:
        writer = WarehouseWriter(engine)

        def stage_state() -> tuple[Any, Any]:
            with engine.connect() as conn:  # the pool's only connection: the one the writer used
                oid = conn.exec_driver_sql("SELECT to_regclass('pg_temp._stage_feedback')::oid").scalar()
                rows = conn.exec_driver_sql("SELECT count(*) FROM pg_temp._stage_feedback").scalar()
            return oid, rows

        assert writer.write(items[:100]) == 100
        oid, rows = stage_state()
        assert oid is not None and rows == 0
        with pytest.raises(RuntimeError), engine.begin() as conn:  # a batch that fails after staging
            cols = feedback_columns(items[100:200], datetime.now(UTC))
            assert bulk.insert_new_columns(conn, Feedback.__table__, cols, writer._insert_new_stmt(),
                                           writer._upsert_stmt())
            raise RuntimeError("after the COPY")
        assert stage_state() == (oid, 0)
        assert writer.write(items[100:]) == 200
        writer.write(items[:150])  # re-delivered: upserted from the same staging table
        assert stage_state() == (oid, 0)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM feedback")).scalar_one() == 300
        expected = {r[0]: r[3] for r in customers(engine)}
        with engine.begin() as conn:
            refresh_customer_refs(conn, list(expected))
        assert {r[0]: r[3] for r in customers(engine)} == expected
