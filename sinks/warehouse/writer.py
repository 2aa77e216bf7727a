"""Batched, idempotent upserts of enriched feedback (one transaction per batch).

Guarantees: writing the same records again leaves the warehouse unchanged but for ``written_at``;
a batch is all-or-nothing; a database outage surfaces as TransientError, bad data never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from pipeline.errors import TransientError
from pipeline.schema import EnrichedFeedback
from sinks.warehouse import bulk
from sinks.warehouse.analytics import refresh_customers
from sinks.warehouse.db import explain
from sinks.warehouse.enrichment import write_aspects
from sinks.warehouse.models import Feedback, FeedbackCategory
from sinks.warehouse.tickets import upsert_ticket_states

FEEDBACK_COLUMNS = [c.name for c in Feedback.__table__.columns]


def feedback_row(item: EnrichedFeedback, now: datetime) -> dict[str, Any]:
    data = item.model_dump(exclude={"sentiment", "categories", "aspects"})
    data.update(
        sentiment_score=item.sentiment.score,
        sentiment_confidence=item.sentiment.confidence,
        sentiment_polarity=item.sentiment.polarity,
        sentiment_subjectivity=item.sentiment.subjectivity,
        sentiment_label=item.sentiment.label,
        sentiment_analyzer=item.sentiment.analyzer,
        primary_category=item.categories[0].name,
        event_date=item.event_time.date(),
        written_at=now,
    )
    return {k: data[k] for k in FEEDBACK_COLUMNS}


class WarehouseWriter:
    """Upserts batches of :class:`EnrichedFeedback` into the feedback and category tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name

    def _upsert_stmt(self) -> Any:
        stmt: Any
        if self.dialect == "postgresql":
            stmt = postgresql.insert(Feedback)
        elif self.dialect == "sqlite":
            stmt = sqlite.insert(Feedback)
        else:  # pragma: no cover - other dialects are not supported yet
            raise NotImplementedError(f"no upsert for dialect {self.dialect}")
        update = {c: stmt.excluded[c] for c in FEEDBACK_COLUMNS if c != "feedback_id"}
        return stmt.on_conflict_do_update(index_elements=["feedback_id"], set_=update)

    def write(self, items: Sequence[EnrichedFeedback]) -> int:
        """Upsert ``items`` (the last version of an id in the batch wins); returns rows written."""
        latest: dict[Any, EnrichedFeedback] = {}
        for item in items:
            latest[item.feedback_id] = item
        if not latest:
            return 0
        ticket_items = [i for i in latest.values() if i.source == "ticket"]
        latest = {k: i for k, i in latest.items() if not i.is_ticket_state}  # state only: tickets table
        now = datetime.now(UTC)
        rows = [feedback_row(i, now) for i in latest.values()]
        cats = [
            {"feedback_id": i.feedback_id, "category": c.name, "confidence": c.confidence, "rank": n}
            for i in latest.values()
            for n, c in enumerate(i.categories)
        ]
        ids = list(latest)
        try:
            with self.engine.begin() as conn:
                if rows:
                    bulk.upsert(conn, Feedback.__table__, rows, self._upsert_stmt)
                bulk.delete_in(conn, FeedbackCategory.__table__.c.feedback_id, ids)
                if cats:
                    bulk.insert_rows(conn, FeedbackCategory.__table__, cats)
                refresh_customers(conn, rows)
                upsert_ticket_states(conn, ticket_items)
                write_aspects(conn, list(latest.values()))
        except OperationalError as exc:
            if "readonly" in str(exc.orig).lower():
                self.engine.dispose()  # SQLite keeps a file opened read-only so until it is reopened
            raise TransientError(f"warehouse unavailable: {explain(self.engine, exc)}"[:500], retry_after=1) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise TransientError(f"warehouse connection lost: {exc.orig!r}"[:500], retry_after=1) from exc
            raise
        return len(rows)


def _chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), max(1, size))]
