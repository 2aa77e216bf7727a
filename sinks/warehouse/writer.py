"""Batched, idempotent upserts of enriched feedback (one transaction per batch).

A batch is first inserted with ``ON CONFLICT DO NOTHING``; when that stored every row (the usual
case: first delivery) there are no old category or aspect rows to delete and the customers rows are
updated by adding the batch's aggregates (see :mod:`sinks.warehouse.analytics`). Otherwise (a
re-delivery, an edit) the rows are upserted, their child rows replaced and their customers recomputed.
Rows are built column-wise straight from the records (:func:`feedback_columns`), not per record.

Guarantees: writing the same records again leaves the warehouse unchanged but for ``written_at``;
the records of a batch the database accepts are committed in one transaction, those it refuses for
their content and updates from another origin than the stored row's come back as
:class:`Rejected` (:meth:`WarehouseWriter.write_batch`); a database outage surfaces as
TransientError, bad data never does.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection, Engine, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError

from pipeline.errors import RecordError, TransientError
from pipeline.schema import EnrichedFeedback
from sinks.warehouse import bulk
from sinks.warehouse.analytics import add_new_feedback, refresh_customer_refs
from sinks.warehouse.db import explain
from sinks.warehouse.enrichment import write_aspects
from sinks.warehouse.models import Feedback, FeedbackCategory
from sinks.warehouse.tickets import upsert_ticket_states

FEEDBACK_COLUMNS = [c.name for c in Feedback.__table__.columns]
#: Records the writer did not write, by reason (each is returned to the caller, which dead-letters it).
WAREHOUSE_REJECTED = Counter("feedback_warehouse_rejected_total",
                             "Records the warehouse writer rejected (refused content, foreign origin).", ["reason"])


def origin_of(item: EnrichedFeedback) -> str:
    """Who delivered ``item``: its ``origin``, or its ``source`` when it names none."""
    return item.origin or item.source


def feedback_row(item: EnrichedFeedback, now: datetime) -> dict[str, Any]:
    data = item.model_dump(exclude={"sentiment", "categories", "aspects"})
    data.update(
        sentiment_score=item.sentiment.score,
        sentiment_confidence=item.sentiment.confidence,
        sentiment_polarity=item.sentiment.polarity,
        sentiment_subjectivity=item.sentiment.subjectivity,
        sentiment_label=item.sentiment.label,
        sentiment_analyzer=item.sentiment.analyzer,
        sentiment_model=item.sentiment.model,
        primary_category=item.categories[0].name if item.categories else None,  # None: score-only
        event_date=item.event_time.date(),
        written_at=now,
        origin=origin_of(item),
    )
    return {k: data[k] for k in FEEDBACK_COLUMNS}


#: How :func:`feedback_columns` reads each column off a record (None: computed there).
_SENTIMENT = {"sentiment_score": "score", "sentiment_confidence": "confidence", "sentiment_polarity": "polarity",
              "sentiment_subjectivity": "subjectivity", "sentiment_label": "label", "sentiment_analyzer": "analyzer",
              "sentiment_model": "model"}
_GETTERS: dict[str, Any] = {
    c: attrgetter(f"sentiment.{_SENTIMENT[c]}") if c in _SENTIMENT else attrgetter(c)
    for c in FEEDBACK_COLUMNS if c not in ("primary_category", "event_date", "written_at", "origin")
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
            cols[c] = [cats[0].name if cats else None for cats in map(_CATEGORIES, items)]  # None: score-only
        elif c == "event_date":
            cols[c] = list(map(_DATE, map(attrgetter("event_time"), items)))
        elif c == "written_at":
            cols[c] = [now] * len(items)
        elif c == "origin":
            cols[c] = list(map(origin_of, items))
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


@dataclass(frozen=True)
class Rejected:
    """One record the warehouse did not write: ``reason`` is a short code (``db_data_error``,
    ``db_integrity_error``: the database refused the row's content; ``origin_mismatch``: the stored
    row belongs to another origin), ``detail`` the database's message (never the row's values)."""

    item: EnrichedFeedback
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class WriteResult:
    """What :meth:`WarehouseWriter.write_batch` did: ``written`` rows committed in one transaction, and
    the ``rejected`` records that were not written, each with its reason (the caller dead-letters
    them; nothing else of the batch is lost)."""

    written: int
    rejected: tuple[Rejected, ...] = ()


class _RowRefused(Exception):
    """The database refused a statement for a row's content (a data or integrity error)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class WarehouseWriter:
    """Upserts batches of :class:`EnrichedFeedback` into the feedback and category tables.

    Guarantees: :meth:`write_batch` commits every acceptable record of a batch in one transaction
    and returns the others with their reasons: a record whose row the database refuses for its
    content (found by bisecting the batch in transactions that are rolled back), and an update of a
    stored row from another origin than the one that wrote it (that row is left as it was). A
    database outage raises :class:`TransientError`.
    """

    #: Rounds of isolating refused rows before the batch's error is raised as is.
    MAX_ROUNDS = 3

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
        """The feedback upsert (built once per writer, so its compiled form is reused); a stored row
        is updated only by a record of its own origin (the writer also checks before, to report it)."""
        if self._stmt is None:
            stmt = self._insert()
            update = {c: stmt.excluded[c] for c in FEEDBACK_COLUMNS if c != "feedback_id"}
            stored = Feedback.__table__.c.origin
            same = or_(stored.is_(None), stored == stmt.excluded.origin)
            self._stmt = stmt.on_conflict_do_update(index_elements=["feedback_id"], set_=update, where=same)
        return self._stmt

    def _insert_new_stmt(self) -> Any:
        """The feedback insert that skips ids already stored (tried first: most records are new)."""
        if self._insert_stmt is None:
            self._insert_stmt = self._insert().on_conflict_do_nothing(index_elements=["feedback_id"])
        return self._insert_stmt

    def write(self, items: Sequence[EnrichedFeedback]) -> int:
        """:meth:`write_batch` for callers that expect every record to be written: returns the rows
        written, and raises :class:`RecordError` (after committing the rest) when any was rejected."""
        result = self.write_batch(items)
        if result.rejected:
            first = result.rejected[0]
            raise RecordError(first.reason, f"{len(result.rejected)} record(s) rejected, e.g. "
                                            f"{first.item.feedback_id}: {first.detail}"[:500])
        return result.written

    def write_batch(self, items: Sequence[EnrichedFeedback]) -> WriteResult:
        """Upsert ``items`` (the last version of an id in the batch wins) in one transaction; a record
        the database refuses, or that would overwrite another origin's row, comes back rejected."""
        # the last version of an id wins (keyed by the UUID's int: hashed in C, unlike the UUID)
        latest = list(dict(zip(map(_INT, map(_ID, items)), items, strict=True)).values())
        rejected: list[Rejected] = []
        for _ in range(self.MAX_ROUNDS):
            if not latest:
                return WriteResult(0, tuple(rejected))
            try:
                with self._translated(), self.engine.begin() as conn:
                    written, refused = self._write_rows(conn, latest)
                return WriteResult(written, (*rejected, *refused))
            except _RowRefused as exc:
                bad = self._isolate(latest, exc.error)
                rejected.extend(bad)
                gone = {id(r.item) for r in bad}
                latest = [i for i in latest if id(i) not in gone]
                last = exc
        raise last.error

    def _isolate(self, items: list[EnrichedFeedback], error: BaseException) -> list[Rejected]:
        """The records of ``items`` the database refuses on their own, found by bisection: each half is
        tried in a transaction that is rolled back (``error``: what the whole of ``items`` raised)."""
        if len(items) == 1:
            return [_rejection(items[0], error)]
        bad: list[Rejected] = []
        mid = len(items) // 2
        for half in (items[:mid], items[mid:]):
            found = self._probe(half)
            if found is not None:
                bad.extend(self._isolate(half, found))
        return bad

    def _probe(self, items: list[EnrichedFeedback]) -> BaseException | None:
        """The content error writing ``items`` raises, or None; nothing is kept either way."""
        try:
            with self._translated(), self.engine.connect() as conn:
                trans = conn.begin()
                try:
                    self._write_rows(conn, items)
                finally:
                    trans.rollback()
        except _RowRefused as exc:
            return exc.error
        return None

    @contextmanager
    def _translated(self) -> Iterator[None]:
        """Database errors by kind: an outage -> TransientError; a refused row's content -> _RowRefused."""
        dbapi = self.engine.dialect.dbapi
        content = (DataError, IntegrityError) + ((dbapi.DataError, dbapi.IntegrityError) if dbapi else ())
        try:
            yield
        except _RowRefused:
            raise
        except OperationalError as exc:
            if "readonly" in str(exc.orig).lower():
                self.engine.dispose()  # SQLite keeps a file opened read-only so until it is reopened
            raise TransientError(f"warehouse unavailable: {explain(self.engine, exc)}"[:500], retry_after=1) from exc
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise TransientError(f"warehouse connection lost: {exc.orig!r}"[:500], retry_after=1) from exc
            if isinstance(exc, content):
                raise _RowRefused(exc) from exc
            raise
        except content as exc:  # raised by the driver itself (the COPY path talks to it directly)
            raise _RowRefused(exc) from exc
        except Exception as exc:
            if dbapi is not None and isinstance(exc, dbapi.OperationalError):
                raise TransientError(f"warehouse unavailable: {exc}"[:500], retry_after=1) from exc
            raise

    def _write_rows(self, conn: Connection, latest: list[EnrichedFeedback]) -> tuple[int, list[Rejected]]:
        """Write ``latest`` (one version per id) on ``conn``, inside the caller's transaction."""
        ticket_items = [i for i in latest if i.source == "ticket"]
        records = [i for i in latest if not i.is_ticket_state]  # state only: tickets table
        now = datetime.now(UTC)
        cols = feedback_columns(records, now)
        ids = cols["feedback_id"]
        # converted once for the feedback, category and aspect rows (and event times for customers)
        dialect, table = self.engine.dialect, Feedback.__table__
        cols["feedback_id"] = bound_ids = bulk.bind_column(dialect, table.c.feedback_id, ids)
        cols["event_time"] = bulk.bind_column(dialect, table.c.event_time, cols["event_time"])
        refused: list[Rejected] = []
        kept: list[int] | None = None

        def keep() -> list[int] | None:
            nonlocal kept
            kept, refused[:] = _same_origin(conn, records, cols["origin"])
            return kept if refused else None

        # all new (the usual case): no category or aspect row can exist for these ids yet
        new = bulk.insert_new_columns(conn, table, cols, self._insert_new_stmt(), self._upsert_stmt(),
                                      keep) if records else True
        if refused and kept is not None:
            gone = {id(r.item) for r in refused}
            records = [records[i] for i in kept]
            ticket_items = [i for i in ticket_items if id(i) not in gone]
            cols = bulk.take(cols, kept)
            ids, bound_ids = [ids[i] for i in kept], cols["feedback_id"]
        if not new:
            bulk.delete_in(conn, FeedbackCategory.__table__.c.feedback_id, ids)
        cats = category_columns(records, bound_ids)
        if cats["feedback_id"]:
            bulk.insert_columns(conn, FeedbackCategory.__table__, cats)
        if new:  # exact: these rows were not counted before
            add_new_feedback(conn, cols, now, bulk.staged(conn, Feedback.__table__, len(records)))
        else:
            refresh_customer_refs(conn, sorted(set(cols["customer_ref"]) - {None, ""}))
        upsert_ticket_states(conn, ticket_items)
        write_aspects(conn, records, replace=not new, ids=bound_ids)
        return len(records), refused


def _same_origin(conn: Connection, records: list[EnrichedFeedback],
                 origins: Sequence[str]) -> tuple[list[int], list[Rejected]]:
    """Positions of ``records`` whose stored row (if any) has their origin, and the others rejected."""
    stored: dict[Any, str | None] = {}
    table = Feedback.__table__
    ids = [r.feedback_id for r in records]
    for chunk in _chunks(ids, 500):
        stored.update(conn.execute(select(table.c.feedback_id, table.c.origin)
                                   .where(table.c.feedback_id.in_(chunk))).tuples().all())
    kept: list[int] = []
    refused: list[Rejected] = []
    for i, (item, origin) in enumerate(zip(records, origins, strict=True)):
        theirs = stored.get(item.feedback_id, origin)
        if theirs is None or theirs == origin:
            kept.append(i)
        else:
            refused.append(Rejected(item, "origin_mismatch",
                                    f"stored by origin {theirs!r}; this record comes from {origin!r}"))
    if refused:
        WAREHOUSE_REJECTED.labels("origin_mismatch").inc(len(refused))
    return kept, refused


def _rejection(item: EnrichedFeedback, error: BaseException) -> Rejected:
    """A refused row's reason: the kind of error and the database's first line (no parameters)."""
    orig = getattr(error, "orig", None) or error
    integrity = isinstance(error, IntegrityError) or any(c.__name__ == "IntegrityError" for c in type(orig).__mro__)
    kind = "db_integrity_error" if integrity else "db_data_error"
    WAREHOUSE_REJECTED.labels(kind).inc()
    message = str(orig).strip().splitlines()
    return Rejected(item, kind, f"{type(orig).__name__}: {message[0] if message else ''}"[:500])


def _chunks(seq: list[Any], size: int) -> list[list[Any]]:
    return [seq[i : i + size] for i in range(0, len(seq), max(1, size))]
