"""The erasure ledger's drop log: one line per batch, not one per dropped record (a replay drops thousands)."""

from __future__ import annotations

import structlog
from sqlalchemy import create_engine

from pipeline.schema import FeedbackRecord, customer_ref
from sinks.warehouse.ledger import ErasedCustomer, ErasureLedger, record_erased

KEY = b"k" * 32


def test_a_batch_of_erased_records_logs_one_line_with_the_count_and_no_customer_reference() -> None:
    engine = create_engine("sqlite://")
    ErasedCustomer.__table__.create(engine)
    erased = customer_ref("ann@example.org", KEY)
    with engine.begin() as conn:
        record_erased(conn, [erased])
    items = [FeedbackRecord(source="event", source_ref=f"r-{i}", text="late again",
                            customer_ref=erased if i < 12 else None) for i in range(15)]
    with structlog.testing.capture_logs() as logs:
        kept = ErasureLedger(engine).kept(items)
    assert [i.source_ref for i in kept] == ["r-12", "r-13", "r-14"]
    lines = [e for e in logs if "erased" in e["event"]]
    assert len(lines) == 1 and lines[0]["count"] == 12 and lines[0]["more"] == 7
    assert lines[0]["feedback_ids"] == [str(i.feedback_id) for i in items[:5]]
    assert erased not in repr(lines)
