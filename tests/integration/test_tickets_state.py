"""The warehouse's tickets table, folded from ticket records by the writer (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from connectors.tickets.model import Mapped, RecordFactory, Ticket
from pipeline.schema import CategoryTag, EnrichedFeedback, FeedbackRecord, Sentiment
from sinks.warehouse.db import migrate
from sinks.warehouse.tickets import TicketState
from sinks.warehouse.writer import WarehouseWriter

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def writer(warehouse: Engine) -> WarehouseWriter:
    migrate(warehouse)
    return WarehouseWriter(warehouse)


def enrich(record: FeedbackRecord, category: str = "billing") -> EnrichedFeedback:
    if record.score_only:  # a rating without a comment: no sentiment, no categories
        return EnrichedFeedback(**record.model_dump(), sentiment=Sentiment(polarity=0.0, subjectivity=0.0,
                                label="not_assessed"), categories=[])
    return EnrichedFeedback(**record.model_dump(), sentiment=Sentiment(polarity=0.0, subjectivity=0.0,
                            label="neutral"), categories=[CategoryTag(name=category, confidence=0.9)])


def at(day: int, hour: int = 0) -> datetime:
    return datetime(2025, 4, day, hour, tzinfo=UTC)


def ticket(tid: str, updated: datetime, **state: Any) -> Ticket:
    return Ticket(system="zendesk", ticket_id=tid, subject="Refund", description="I want my money back",
                  created_at=at(1), updated_at=updated, requester="x@example.com", **state)


def records(build: Any) -> list[EnrichedFeedback]:
    mapped = Mapped()
    build(RecordFactory(b"k"), mapped)
    return [enrich(r) for r in mapped.records]


def row(engine: Engine, tid: str) -> dict[str, Any]:
    table = TicketState.__table__
    with engine.connect() as conn:  # through the table's types: JSON, booleans and times decoded
        result = conn.execute(select(table).where(table.c.ticket_key == f"zendesk:ticket:{tid}"))
        return dict(result.one()._mapping)


def feedback_count(engine: Engine, tid: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM feedback WHERE thread_ref = :k"),
                                {"k": f"zendesk:ticket:{tid}"}).scalar_one())


def naive(value: Any) -> Any:
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def test_state_follows_the_newest_record_and_never_rolls_back(writer: WarehouseWriter, warehouse: Engine) -> None:
    tid = uuid.uuid4().hex[:10]
    writer.write(records(lambda f, m: f.created(ticket(tid, at(1), status="open", priority="low",
                                                        tags=["refund"], solved=False), m)))
    first = row(warehouse, tid)
    assert first["status"] == "open" and first["primary_category"] == "billing" and first["tags"] == ["refund"]
    assert naive(first["created_at"]) == naive(at(1)) and first["is_solved"] is False

    # solved later: a state-only record -> tickets updated, no feedback row for it
    writer.write(records(lambda f, m: f.state(ticket(tid, at(3), status="solved", solved=True), "v3", m)))
    solved = row(warehouse, tid)
    assert solved["status"] == "solved" and solved["is_solved"] is True
    assert naive(solved["solved_at"]) == naive(at(3)) and solved["priority"] == "low"  # NULL keeps the value
    assert solved["tags"] == ["refund"]
    assert feedback_count(warehouse, tid) == 1

    # an older state arriving late (re-delivery, reordering) changes nothing
    writer.write(records(lambda f, m: f.state(ticket(tid, at(2), status="pending", priority="urgent"), "v2", m)))
    late = row(warehouse, tid)
    assert late["status"] == "solved" and late["priority"] == "low" and naive(late["state_at"]) == naive(at(3))

    # reopened: solved_at cleared; solved again: new time
    writer.write(records(lambda f, m: f.state(ticket(tid, at(4), status="open", solved=False), "v4", m)))
    assert row(warehouse, tid)["solved_at"] is None
    writer.write(records(lambda f, m: f.state(ticket(tid, at(5), status="closed", solved=True,
                                                    solved_at=at(5, 1)), "v5", m)))
    closed = row(warehouse, tid)
    assert closed["status"] == "closed" and naive(closed["solved_at"]) == naive(at(5, 1))
    assert feedback_count(warehouse, tid) == 1


def test_latest_csat_and_one_batch_with_many_versions(writer: WarehouseWriter, warehouse: Engine) -> None:
    tid = uuid.uuid4().hex[:10]

    def build(f: RecordFactory, m: Mapped) -> None:  # one batch: created, two ratings, a state change
        f.created(ticket(tid, at(1), status="new"), m)
        f.rating(ticket(tid, at(6), status="solved", solved=True), "r2", 1, "bad", "Too slow", at(6), m)
        f.rating(ticket(tid, at(5), status="solved", solved=True), "r1", 5, "good", None, at(5), m)
        f.state(ticket(tid, at(2), status="open"), "v2", m)

    items = records(build)
    assert writer.write(items) == 3  # created + two ratings are feedback; the state record is not
    r = row(warehouse, tid)
    assert r["csat_score"] == 1 and r["csat_raw"] == "bad" and r["csat_comment"] == "Too slow"
    assert naive(r["csat_at"]) == naive(at(6)) and r["status"] == "solved"
    assert feedback_count(warehouse, tid) == 3
    # writing the same batch again changes nothing but written_at
    writer.write(items)
    again = row(warehouse, tid)
    assert {k: v for k, v in again.items() if k != "written_at"} == {k: v for k, v in r.items() if k != "written_at"}


def test_csat_by_category_for_tickets_solved_last_week(writer: WarehouseWriter, warehouse: Engine) -> None:
    """The analysts' question of the issue, answered by one query over the tickets table."""
    run = uuid.uuid4().hex[:6]

    def build(tid: str, category: str, score: int, solved: datetime) -> list[EnrichedFeedback]:
        mapped = Mapped()
        f = RecordFactory(b"k")
        f.created(ticket(tid, at(1), status="open"), mapped)
        f.rating(ticket(tid, solved, status="solved", solved=True), None, score, str(score), None, solved, mapped)
        return [enrich(r, category) for r in mapped.records]

    writer.write(build(f"{run}a", "delivery", 1, at(10)) + build(f"{run}b", "delivery", 3, at(11))
                 + build(f"{run}c", "billing", 5, at(12)) + build(f"{run}d", "billing", 4, at(20)))
    with warehouse.connect() as conn:
        result = conn.execute(text(
            "SELECT primary_category, avg(csat_score) AS csat, count(*) AS n FROM tickets "
            "WHERE is_solved AND solved_at >= :start AND solved_at < :end AND ticket_id LIKE :run "
            "GROUP BY primary_category ORDER BY primary_category"),
            {"start": at(8), "end": at(15), "run": f"{run}%"})
        got = [(c, float(a), n) for c, a, n in result]
    assert got == [("billing", 5.0, 1), ("delivery", 2.0, 2)]
