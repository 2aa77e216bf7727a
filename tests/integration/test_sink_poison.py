"""A poison pill between valid records, through the running pipeline on PostgreSQL.

The pill passes the HTTP service and the processor (a product holding a NUL character) but
PostgreSQL refuses it: the warehouse sink dead-letters it with its reason and original payload and
goes on; every valid record around it is stored, and no log line shows the pill's values.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import text

from sinks.warehouse.db import make_engine
from tests.integration.harness import Pipeline, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pg_pipeline(kafka_bootstrap: str, pg_schema_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    engine = make_engine(pg_schema_url)
    p = Pipeline(kafka_bootstrap, pg_schema_url, engine, tmp_path_factory.mktemp("poison"))
    p.start_all()
    try:
        yield p
    finally:
        p.stop()
        engine.dispose()


def test_a_poison_pill_is_dead_lettered_and_the_sink_goes_on(pg_pipeline: Pipeline) -> None:
    p = pg_pipeline
    run = uuid.uuid4().hex[:8]
    before = [{"source_ref": f"{run}-before-{n}", "text": f"Delivery {n} was fine"} for n in range(20)]
    pill = {"source_ref": f"{run}-pill", "text": "Secret complaint about the courier", "product": "box\u0000x"}
    after = [{"source_ref": f"{run}-after-{n}", "text": f"Delivery {n} was late"} for n in range(20)]
    # one request: the pill reaches the sink in the same batch as valid records
    r = httpx.post(f"{p.url}/v1/events", json=[*before, pill, *after], timeout=30)
    assert r.status_code == 202, r.text
    # and the sink still writes what comes later
    later = {"source_ref": f"{run}-later", "text": "Posted after the pill"}
    assert httpx.post(f"{p.url}/v1/events", json=later, timeout=30).status_code == 202

    wait_for(lambda: p.count(f"source_ref LIKE '{run}-%'") == 41, 120, what="every valid record stored")
    assert p.count(f"source_ref = '{run}-pill'") == 0
    letters = p.dead_letters(lambda d: d.stage == "sink" and f"{run}-pill" in d.payload, timeout=60)
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == "db_data_error"
    assert "NUL" in letter.detail
    payload = json.loads(letter.original_bytes())
    assert payload["source_ref"] == f"{run}-pill" and payload["product"] == "box\u0000x"
    assert letter.topic == p.prefix + "feedback.enriched" and letter.offset is not None
    assert wait_for(lambda: p.metric("sink", "feedback_dead_lettered_total", stage="sink",
                                     reason="db_data_error") >= 1, 30, what="dead-letter counter")
    assert p.metric("sink", "feedback_warehouse_rejected_total", reason="db_data_error") >= 1
    assert p.procs["sink"].poll() is None  # still running
    assert "Secret complaint" not in p.log("sink")  # the pill's values never reach the log
    with p.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM feedback WHERE source_ref LIKE :r"),
                            {"r": f"{run}-after-%"}).scalar_one() == 20
