"""The sink's bulk write path against the plain one, on SQLite and PostgreSQL, and the customers table.

The bulk path (COPY + INSERT ... SELECT ... ON CONFLICT on PostgreSQL, a prepared executemany on
SQLite) must leave exactly what one statement per row leaves, awkward text included; writing the
same records again changes nothing; ``customers`` always equals an aggregate of ``feedback``.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment
from sinks.warehouse import bulk
from sinks.warehouse.bench_sink import write_one_at_a_time
from sinks.warehouse.sample_data import enriched_sample
from sinks.warehouse.writer import WarehouseWriter
from tests.integration.warehouse_data import DIALECTS, fresh_engine

pytestmark = pytest.mark.integration

AWKWARD = ["tab\there", "new\nline", "back\\slash \\N", "quote \" and '", "ünïcødé \u2013 🚚", "comma, semi; pipe|"]


def records() -> list[EnrichedFeedback]:
    items = enriched_sample(150, seed=3, run="bulk", days=20, customers=30)
    for n, odd in enumerate(AWKWARD):
        items.append(EnrichedFeedback(
            source_ref=f"odd-{n}", text=f"The courier {odd}", subject=odd, customer_ref="c_odd", nps_score=n,
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
