"""The warehouse sink on the kernel's sink runner against a real database (SQLite and PostgreSQL):
refused rows dead-lettered with their reason and original bytes, the rest written, commit last."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from pipeline.config import SinkSettings
from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment
from pipeline.sink_runner import SinkRunner
from pipeline.testing import ListInput, MemoryPublisher, transient
from sinks.warehouse.consumer import WarehouseSink
from tests.conftest import TEST_CUSTOMER_KEY

# the fixture fresh_engine: an empty SQLite file or a new PostgreSQL schema
from tests.integration.test_alembic_check import fresh_engine  # noqa: F401

pytestmark = pytest.mark.integration


def item(ref: str, origin: str, text_: str = "late delivery") -> EnrichedFeedback:
    return EnrichedFeedback(
        source_ref=ref, text=text_, nps_score=3, origin=origin,
        sentiment=Sentiment(polarity=-0.3, subjectivity=0.6, label="negative"),
        categories=[CategoryTag(name="delivery", confidence=0.7)], nps_class="detractor",
    )


def test_refused_rows_are_dead_lettered_and_the_batch_committed_after_the_write(
        fresh_engine: Engine, tmp_path: object) -> None:  # noqa: F811
    url = fresh_engine.url.render_as_string(hide_password=False)
    sink = WarehouseSink(SinkSettings(warehouse_url=url, customer_hash_key=TEST_CUSTOMER_KEY))
    events: list[str] = []
    publisher = MemoryPublisher(events)
    first = [item("a", "crm").model_dump_json().encode()]
    runner = SinkRunner(sink, lambda: source, publisher, batch_size=10, batch_ms=50)
    source = ListInput(first, events=events, on_empty=runner.stop)
    runner.run()  # setup migrates; "a" is stored by origin crm
    assert events == ["commit:0"] and not publisher.dead_letters

    # "a" again from another origin (refused), "b" new, one undecodable message
    second = [item("a", "helpdesk", "overwritten?").model_dump_json().encode(), b"{broken",
              item("b", "helpdesk").model_dump_json().encode()]
    sink = WarehouseSink(SinkSettings(warehouse_url=url, customer_hash_key=TEST_CUSTOMER_KEY))
    events.clear()
    runner = SinkRunner(sink, lambda: source, publisher, batch_size=10, batch_ms=50)
    source = ListInput(second, events=events, on_empty=runner.stop)
    runner.run()
    assert events == ["dead_letter:2", "commit:2"]
    by_reason = {d.reason: d for d in publisher.dead_letters}
    assert set(by_reason) == {"origin_mismatch", "invalid_enriched_record"}
    assert by_reason["origin_mismatch"].original_bytes() == second[0] and by_reason["origin_mismatch"].offset == 0
    assert all(d.stage == "sink" for d in publisher.dead_letters)
    with fresh_engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT source_ref, text FROM feedback ORDER BY source_ref")).all())
    assert rows == {"a": "late delivery", "b": "late delivery"}  # "a" kept as crm wrote it


def test_a_database_outage_is_retried_without_losing_or_committing_the_batch(
        fresh_engine: Engine) -> None:  # noqa: F811
    url = fresh_engine.url.render_as_string(hide_password=False)
    sink = WarehouseSink(SinkSettings(warehouse_url=url, customer_hash_key=TEST_CUSTOMER_KEY))
    writer_write = sink.writer.write_batch
    calls: list[str] = []

    def flaky(items: object) -> object:
        calls.append("write")
        if len(calls) == 1:
            raise transient("warehouse unavailable: connection refused", retry_after=0.2)
        return writer_write(items)  # type: ignore[arg-type]

    sink.writer.write_batch = flaky  # type: ignore[method-assign]
    events: list[str] = []
    runner = SinkRunner(sink, lambda: source, MemoryPublisher(events), batch_size=10, batch_ms=50)
    source = ListInput([item(r, "crm").model_dump_json().encode() for r in "xyz"], events=events,
                       on_empty=runner.stop)
    runner.run()
    assert calls == ["write", "write"] and events == ["commit:2"]
    with fresh_engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM feedback")).scalar_one() == 3
