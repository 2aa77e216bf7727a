"""The dashboard's warehouse panels run on a real, migrated PostgreSQL and compute the right numbers.

Grafana expands ``$__timeFilter(col)`` into ``col BETWEEN '<from>' AND '<to>'``; the test does the
same, fills the warehouse through the real enricher and writer, and compares NPS and sentiment per
category with the same figures computed in Python from the enriched records.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from sqlalchemy import Engine, text

from pipeline.schema import EnrichedFeedback, FeedbackRecord
from processors.enrich import Enricher
from processors.taxonomy import Taxonomy
from sinks.warehouse.db import make_engine, migrate
from sinks.warehouse.writer import WarehouseWriter
from tests.conftest import require
from tests.integration.conftest import PG_DSN, _pg_available
from tests.unit.test_deploy_dashboard import sql

pytestmark = pytest.mark.integration

TEXTS = [
    ("The parcel arrived late and the courier was rude", 2),
    ("Delivery was quick and the box was intact, great", 10),
    ("I was charged twice on my invoice, please refund", 3),
    ("The support agent was friendly and solved it fast", 9),
    ("The app keeps crashing when I log in", 5),
    ("Lovely product, works exactly as described", 8),
]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    require(_pg_available(), f"PostgreSQL at {PG_DSN}")
    schema = f"graf_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    url = PG_DSN.replace("postgresql://", "postgresql+psycopg://", 1) + f"?options=-csearch_path%3D{schema}"
    eng = make_engine(url)
    migrate(eng)
    try:
        yield eng
    finally:
        eng.dispose()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _expand(query: str, start: datetime, end: datetime) -> str:
    return re.sub(r"\$__timeFilter\(([\w.]+)\)", lambda m: f"{m.group(1)} BETWEEN '{start.isoformat()}' AND "
                  f"'{end.isoformat()}'", query)


def test_warehouse_panels_compute_nps_and_sentiment_by_category(engine: Engine) -> None:
    enricher = Enricher(Taxonomy.load())
    now = datetime.now(UTC)
    items: list[EnrichedFeedback] = []
    for i in range(60):
        body, score = TEXTS[i % len(TEXTS)]
        record = FeedbackRecord(source_ref=f"graf-{i}", text=body, nps_score=score,
                                event_time=now - timedelta(hours=i))
        items.append(enricher.enrich(record))
    old = FeedbackRecord(source_ref="graf-old", text="Ancient complaint about delivery", nps_score=0,
                         event_time=now - timedelta(days=400))
    WarehouseWriter(engine).write([*items, enricher.enrich(old)])  # outside the time range: not counted

    nps: dict[str, list[str]] = defaultdict(list)
    polarity: dict[str, list[float]] = defaultdict(list)
    for item in items:
        for tag in item.categories:
            nps[tag.name].append(str(item.nps_class))
            polarity[tag.name].append(item.sentiment.polarity)

    queries = dict(sql())
    assert len(queries) >= 3
    with engine.connect() as conn:
        for title, query in queries.items():
            rows = conn.execute(text(_expand(query, now - timedelta(days=7), now + timedelta(minutes=1))))
            result = [dict(r._mapping) for r in rows]
            if "NPS by category" in title:
                got = {r["category"]: (r["responses"], float(r["NPS"])) for r in result}
                want = {c: (len(v), round(100 * (v.count("promoter") - v.count("detractor")) / len(v), 1))
                        for c, v in nps.items()}
                assert got == want
            elif "Sentiment by category" in title:
                got_s = {r["category"]: (r["responses"], float(r["mean sentiment"])) for r in result}
                want_s = {c: (len(v), round(sum(v) / len(v), 3)) for c, v in polarity.items()}
                assert got_s.keys() == want_s.keys()
                for category, (n, mean) in want_s.items():
                    assert got_s[category][0] == n and got_s[category][1] == pytest.approx(mean, abs=0.0011)
            else:  # the open-alerts table: runs on the migrated schema (empty here)
                assert result == []
