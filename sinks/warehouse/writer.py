"""Batched, idempotent upserts of enriched feedback (one transaction per batch).

A batch is first inserted with ``ON CONFLICT DO NOTHING``; when that stored every row (the usual
case: first delivery) there are no old category or aspect rows to delete and the customers rows are
updated by adding the batch's aggregates (see :mod:`sinks.warehouse.analytics`). Otherwise (a
re-delivery, an edit) the rows are upserted, their child rows replaced and their customers recomputed.
Rows are built column-wise straight from the records (:func:`feedback_columns`), not per record.

Guarantees: writing the same records again leaves the warehouse unchanged but for ``written_at``;
a batch is all-or-nothing; a database outage surfaces as TransientError, bad data never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError

from pipeline.errors import TransientError
from pipeline.schema import EnrichedFeedback
from sinks.warehouse import bulk
from sinks.warehouse.analytics import add_new_feedback, refresh_customer_refs
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


#: How :func:`feedback_columns` reads each column off a record (None: computed there).
_SENTIMENT = {"sentiment_score": "score", "sentiment_confidence": "confidence", "sentiment_polarity": "polarity",
              "sentiment_subjectivity": "subjectivity", "sentiment_label": "label", "sentiment_analyzer": "analyzer"}
_GETTERS: dict[str, Any] = {
    c: attrgetter(f"sentiment.{_SENTIMENT[c]}") if c in _SENTIMENT else attrgetter(c)
    for c in FEEDBACK_COLUMNS if c not in ("primary_category", "event_date", "written_at")
}
_FIRST = itemgetter(0)
_NAME = attrgetter("name")
_ID = attrgetter("feedback_id")
_INT = attrgetter("int")
_CATEGORIES = attrgetter("categories")
_CONFIDENCE = attrgetter("confidence")
_DATE = methodcaller("date")


def feedback_columns(items: Sequence[EnrichedFeedback], now: datetime) -> dict[str, list[Any]]:
    """The feedback rows of ``items`` column-wise (FEEDBACK_COLUMNS order): the same values as
    :func:`feedback_row`, read with C-level getters instead of a ``model_dump`` per record."""
    cols: dict[str, list[Any]] = {}
    for c in FEEDBACK_COLUMNS:
        if c == "primary_category":
            cols[c] = list(map(_NAME, map(_FIRST, map(_CATEGORIES, items))))
        elif c == "event_date":
            cols[c] = list(map(_DATE, map(attrgetter("event_time"), items)))
        elif c == "written_at":
            cols[c] = [now] * len(items)
        else:
            cols[c] = list(map(_GETTERS[c], items))
    return cols


def category_columns(items: Sequence[EnrichedFeedback], ids: Sequence[Any] | None = None) -> dict[str, list[Any]]:
    """The ``feedback_categories`` rows of ``items`` column-wise (rank = position in ``categories``);
    ``ids``: the items' feedback ids as the feedback rows hold them (a
    :class:`~sinks.warehouse.bulk.Bound` column is repeated as such), by default read off the items."""
    per_item = list(map(_CATEGORIES, items))
    cats = list(chain.from_iterable(per_item))
    return {
        "feedback_id": bulk.repeat_each(list(map(_ID, items)) if ids is None else ids, list(map(len, per_item))),
        "category": list(map(_NAME, cats)),
        "confidence": list(map(_CONFIDENCE, cats)),
        "rank": list(chain.from_iterable(map(range, map(len, per_item)))),
    }


class WarehouseWriter:
    """Upserts batches of :class:`EnrichedFeedback` into the feedback and category tables."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self._stmt: Any = None
        self._insert_stmt: Any = None

    def _insert(self) -> Any:
        if self.dialect == "postgresql":
            return postgresql.insert(Feedback)
        if self.dialect == "sqlite":
            return sqlite.insert(Feedback)
        raise NotImplementedError(f"no upsert for dialect {self.dialect}")  # pragma: no cover

    def _upsert_stmt(self) -> Any:
        """The feedback upsert (built once per writer, so its compiled form is reused)."""
        if self._stmt is None:
            stmt = self._insert()
            update = {c: stmt.excluded[c] for c in FEEDBACK_COLUMNS if c != "feedback_id"}
            self._stmt = stmt.on_conflict_do_update(index_elements=["feedback_id"], set_=update)
        return self._stmt

    def _insert_new_stmt(self) -> Any:
        """The feedback insert that skips ids already stored (tried first: most records are new)."""
        if self._insert_stmt is None:
            self._insert_stmt = self._insert().on_conflict_do_nothing(index_elements=["feedback_id"])
        return self._insert_stmt

    def write(self, items: Sequence[EnrichedFeedback]) -> int:
        """Upsert ``items`` (the last version of an id in the batch wins); returns rows written."""
        # the last version of an id wins (keyed by the UUID's int: hashed in C, unlike the UUID)
        latest = list(dict(zip(map(_INT, map(_ID, items)), items, strict=True)).values())
        if not latest:
            return 0
        ticket_items = [i for i in latest if i.source == "ticket"]
        records = [i for i in latest if not i.is_ticket_state]  # state only: tickets table
        now = datetime.now(UTC)
        cols = feedback_columns(records, now)
        ids = cols["feedback_id"]
        # converted once for the feedback, category and aspect rows (and event times for customers)
        dialect, table = self.engine.dialect, Feedback.__table__
        cols["feedback_id"] = bound_ids = bulk.bind_column(dialect, table.c.feedback_id, ids)
        cols["event_time"] = bulk.bind_column(dialect, table.c.event_time, cols["event_time"])
        cats = category_columns(records, bound_ids)
        refs = sorted(set(cols["customer_ref"]) - {None, ""})
        try:
            with self.engine.begin() as conn:
                # all new (the usual case): no category or aspect row can exist for these ids yet
                new = bulk.insert_new_columns(conn, Feedback.__table__, cols, self._insert_new_stmt(),
                                              self._upsert_stmt()) if records else True
                if not new:
                    bulk.delete_in(conn, FeedbackCategory.__table__.c.feedback_id, ids)
                if cats["feedback_id"]:
                    bulk.insert_columns(conn, FeedbackCategory.__table__, cats)
                if new:  # exact: these rows were not counted before
                    add_new_feedback(conn, cols, now, bulk.staged(conn, Feedback.__table__, len(records)))
                else:
                    refresh_customer_refs(conn, refs)
                upsert_ticket_states(conn, ticket_items)
                write_aspects(conn, records, replace=not new, ids=bound_ids)
        except OperationalError as exc:
            if "readonly" in str(exc.orig).lower():
                self.engine.dispose()  # SQLite keeps a file opened read-only so until it is reopened
            raise TransientError(f"warehouse unavailable: {explain(self.engine, exc)}"[:500], retry_after=1) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise TransientError(f"warehouse connection lost: {exc.orig!r}"[:500], retry_after=1) from exc
            raise
        return len(records)


def _chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), max(1, size))]
