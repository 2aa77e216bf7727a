"""Analytics tables kept by the sink: ``customers`` (one row per customer reference) and ``retention_log``.

The customers table is derived from ``feedback``: :func:`refresh_customers` recomputes the rows of
the customers a batch touched from the ``feedback`` table, inside the sink's transaction.
Re-delivered records therefore never inflate a count, and a purge or an erasure that deleted
feedback brings the counts back in line (a customer left without feedback loses its row).

One shortcut, exact by construction: when the sink's ``INSERT ... ON CONFLICT DO NOTHING`` inserted
*every* row of a batch (no id existed, committed or in flight: such an insert waits for the other
transaction), the aggregates of those rows are added to the stored ones (:func:`add_new_feedback`):
counts add up, first/last seen take the min/max, and the CSAT mean is recombined from the integer
sums (``round(mean * responses)`` is the exact sum of 1-5 scores), giving the value the recomputation
gives. Any batch that re-wrote an existing row takes the recomputation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Connection,
    DateTime,
    Float,
    Index,
    Integer,
    String,
    any_,
    bindparam,
    case,
    cast,
    column,
    delete,
    exists,
    func,
    literal,
    select,
    table,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from sinks.warehouse import bulk
from sinks.warehouse.models import Base, Feedback

TZ = DateTime(timezone=True)
#: Customer references per statement (well under SQLite's bound-parameter limit).
CHUNK = 500


class Customer(Base):
    """One row per ``customer_ref`` (the keyed hash, never an address), derived from ``feedback``.

    Guarantees: after every sink transaction the row equals an aggregate of the customer's current
    feedback rows (first/last event time, counts); it is absent when the customer has no feedback.
    """

    __tablename__ = "customers"

    customer_ref: Mapped[str] = mapped_column(String(500), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(TZ)
    last_seen_at: Mapped[datetime] = mapped_column(TZ)
    feedback_count: Mapped[int] = mapped_column(Integer)
    negative_count: Mapped[int] = mapped_column(Integer)
    nps_responses: Mapped[int] = mapped_column(Integer)
    promoters: Mapped[int] = mapped_column(Integer)
    detractors: Mapped[int] = mapped_column(Integer)
    csat_responses: Mapped[int] = mapped_column(Integer)
    csat_mean: Mapped[float | None] = mapped_column(Float)
    updated_at: Mapped[datetime] = mapped_column(TZ)

    __table_args__ = (Index("ix_customers_last_seen_at", "last_seen_at"),)


class RetentionLog(Base):
    """One row per purge or erasure run: what was asked and how many rows each table lost.

    An erasure row never names the customer (``criteria`` is ``customer_ref=<erased>``).
    """

    __tablename__ = "retention_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(20))
    criteria: Mapped[str] = mapped_column(String(500))
    deleted: Mapped[dict[str, int]] = mapped_column(JSON)
    actor: Mapped[str | None] = mapped_column(String(200))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(TZ)


#: The analysts' category-by-day index on ``feedback`` (revision 0006_analytics creates it).
Index("ix_feedback_category_date", Feedback.primary_category, Feedback.event_date)


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _in(column: Any, values: list[str], dialect: str) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, a query prepared once.
    The parameter is named ``refs`` (on SQLite an expanding one: ``refs_1``, ``refs_2``, ...)."""
    if dialect == "postgresql":
        return column == any_(bindparam("refs", values, type_=ARRAY(String())))
    return column.in_(bindparam("refs", values, expanding=True))


def _customer_columns(c: Any) -> list[Any]:
    """Per customer_ref of the rows with columns ``c`` (feedback or a copy of it): first/last seen,
    feedback, negative, NPS responses/promoters/detractors, CSAT responses and mean."""
    return [
        c.customer_ref,
        func.min(c.event_time),
        func.max(c.event_time),
        func.count(),
        _count_if(c.sentiment_label == "negative"),
        func.count(c.nps_score),
        _count_if(c.nps_class == "promoter"),
        _count_if(c.nps_class == "detractor"),
        func.count(c.csat_score),
        func.avg(cast(c.csat_score, Float)),
    ]


def _aggregate(refs: list[str], now: datetime | None, dialect: str) -> Any:
    f = Feedback.__table__.c
    return (
        select(
            *_customer_columns(f),
            literal(now, TZ) if now is not None else bindparam("now", datetime(2000, 1, 1, tzinfo=UTC), type_=TZ),
        )
        .where(_in(f.customer_ref, refs, dialect))
        .group_by(f.customer_ref)
    )


COLUMNS = [c.name for c in Customer.__table__.columns]
_TZINFO = attrgetter("tzinfo")


def _upsert(dialect: str, refs: list[str], now: datetime | None) -> Any:
    """The customers upsert of ``refs`` (``now=None``: a ``now`` parameter)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Any = Customer.__table__
    stmt = insert(table).from_select(COLUMNS, _aggregate(refs, now, dialect))
    return stmt.on_conflict_do_update(
        index_elements=["customer_ref"], set_={c: stmt.excluded[c] for c in COLUMNS if c != "customer_ref"}
    )


#: Sizes the ``IN`` list of SQLite's refresh is padded to (repeating a reference), so that a handful
#: of statements are compiled once per process and SQLite re-parses nothing bigger than needed.
SQLITE_SIZES = (8, 64, CHUNK)
_REF, _NOW = object(), object()
_COMPILED: dict[tuple[str, int], tuple[str, list[Any]]] = {}


def _compiled_refresh(dialect: Any, size: int) -> tuple[str, list[Any]]:
    """(SQL, parameter slots) of the customers upsert: ``_NOW``, ``_REF`` (a reference, in turn; all
    of them as one array on PostgreSQL) or the statement's own constant, already bind-processed."""
    key = (dialect.name, size)
    hit = _COMPILED.get(key)
    if hit is not None:
        return hit
    stmt = _upsert(dialect.name, [""] * size, None)
    compiled = stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    names = compiled.positiontup if compiled.positional else list(compiled.params)
    slots: list[Any] = []
    for name in names:
        if name == "now":
            slots.append(_NOW)
        elif name == "refs" or (name.startswith("refs_") and name not in compiled.binds):
            slots.append(_REF)
        else:
            impl = compiled.binds[name].type.dialect_impl(dialect)
            proc = impl.bind_processor(dialect)
            value = compiled.params[name]
            slots.append((name, proc(value) if proc else value))
    _COMPILED[key] = (str(compiled), slots)
    return _COMPILED[key]


def _upsert_refs(conn: Connection, refs: list[str], now: datetime) -> None:
    """One compiled upsert of the customers ``refs`` (at most CHUNK on SQLite; any number on PostgreSQL)."""
    dialect = conn.dialect
    if dialect.name == "postgresql":
        sql, slots = _compiled_refresh(dialect, 0)
        named = {s[0]: s[1] for s in slots if isinstance(s, tuple)}
        named.update(now=now, refs=bulk.pg_array_literal(refs) or refs)  # one text parameter, cast
        conn.exec_driver_sql(sql, named)
        return
    if dialect.paramstyle != "qmark":  # pragma: no cover - other dialects are not supported yet
        conn.execute(_upsert(dialect.name, refs, now))
        return
    size = next((s for s in SQLITE_SIZES if s >= len(refs)), len(refs))
    sql, slots = _compiled_refresh(dialect, size)
    padded = iter(refs + [refs[0]] * (size - len(refs)))
    impl = TZ.dialect_impl(dialect)
    proc = impl.bind_processor(dialect)
    stamp = proc(now) if proc else now
    conn.exec_driver_sql(sql, tuple(stamp if s is _NOW else next(padded) if s is _REF else s[1] for s in slots))


def refresh_customer_refs(conn: Connection, refs: Iterable[str], prune: bool = False) -> int:
    """Recompute the customers ``refs`` from ``feedback``; returns how many (see :func:`refresh_customers`)."""
    refs = sorted(set(refs))
    if not refs:
        return 0
    now = datetime.now(UTC)
    table: Any = Customer.__table__
    step = len(refs) if conn.dialect.name == "postgresql" else CHUNK
    for i in range(0, len(refs), step):
        chunk = refs[i : i + step]
        _upsert_refs(conn, chunk, now)
        if not prune:
            continue
        f = Feedback.__table__.c
        conn.execute(
            delete(table).where(_in(table.c.customer_ref, chunk, conn.dialect.name),
                                ~exists().where(f.customer_ref == table.c.customer_ref))
        )
    return len(refs)


def refresh_customers(conn: Connection, rows: Iterable[Mapping[str, Any]], prune: bool = False) -> int:
    """Recompute the customers of ``rows`` (feedback row dicts) from ``feedback``; returns how many.

    Call inside the transaction that wrote (or deleted) the feedback rows. With ``prune`` (after a
    delete) customers left without feedback lose their row; the sink's upserts never need it.
    """
    return refresh_customer_refs(conn, [r["customer_ref"] for r in rows if r.get("customer_ref")], prune)


#: Feedback columns :func:`add_new_feedback` reads.
DELTA_COLUMNS = ("customer_ref", "event_time", "sentiment_label", "nps_score", "nps_class", "csat_score")


def _delta_columns(cols: Mapping[str, Sequence[Any]], now: datetime) -> dict[str, Sequence[Any]]:
    """Per customer of the feedback rows ``cols``: the customers row those rows alone would give.

    When ``cols["event_time"]`` is a :class:`~sinks.warehouse.bulk.Bound` column, first and last
    seen are too, taken from it (customers times are stored as feedback times are): an event time is
    converted once per batch, not once more for its customer."""
    acc: dict[str, list[Any]] = {}
    for ref, at, label, nps, nps_cls, csat in zip(*(bulk.raw_values(cols[c]) for c in DELTA_COLUMNS), strict=True):
        if not ref:
            continue
        a = acc.get(ref)
        if a is None:
            a = acc[ref] = [at, at, 0, 0, 0, 0, 0, 0, 0]
        elif at < a[0]:
            a[0] = at
        elif at > a[1]:
            a[1] = at
        a[2] += 1
        a[3] += label == "negative"
        if nps is not None:
            a[4] += 1
        a[5] += nps_cls == "promoter"
        a[6] += nps_cls == "detractor"
        if csat is not None:
            a[7] += 1
            a[8] += csat
    refs = sorted(acc)
    rows = [acc[r] for r in refs]
    first: Sequence[Any] = [a[0] for a in rows]
    last: Sequence[Any] = [a[1] for a in rows]
    times = cols["event_time"]
    # one time zone only: equal instants in two zones would share a key but not a converted value
    if type(times) is bulk.Bound and len(set(map(_TZINFO, times.raw))) == 1:
        converted = dict(zip(times.raw, times, strict=True))
        first = bulk.Bound(list(map(converted.__getitem__, first)), first)
        last = bulk.Bound(list(map(converted.__getitem__, last)), last)
    return {
        "customer_ref": refs,
        "first_seen_at": first,
        "last_seen_at": last,
        "feedback_count": [a[2] for a in rows],
        "negative_count": [a[3] for a in rows],
        "nps_responses": [a[4] for a in rows],
        "promoters": [a[5] for a in rows],
        "detractors": [a[6] for a in rows],
        "csat_responses": [a[7] for a in rows],
        "csat_mean": [a[8] / a[7] if a[7] else None for a in rows],
        "updated_at": [now] * len(refs),
    }


_ADD_STMTS: dict[str, Any] = {}


def _add_stmt(dialect: str) -> Any:
    """``INSERT INTO customers ... ON CONFLICT DO UPDATE`` adding the new rows' aggregates to the stored ones."""
    stmt = _ADD_STMTS.get(dialect)
    if stmt is not None:
        return stmt
    table: Any = Customer.__table__
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    old, new = table.c, insert.excluded
    least, greatest = (func.least, func.greatest) if dialect == "postgresql" else (func.min, func.max)

    def csat_sum(side: Any) -> Any:
        return func.coalesce(func.round(side.csat_mean * side.csat_responses), 0)

    update: dict[str, Any] = {
        "first_seen_at": least(old.first_seen_at, new.first_seen_at),
        "last_seen_at": greatest(old.last_seen_at, new.last_seen_at),
        **{c: old[c] + new[c] for c in ("feedback_count", "negative_count", "nps_responses", "promoters",
                                        "detractors", "csat_responses")},
        "csat_mean": (csat_sum(old) + csat_sum(new))
        / func.nullif(old.csat_responses + new.csat_responses, 0),
        "updated_at": new.updated_at,
    }
    stmt = _ADD_STMTS[dialect] = insert.on_conflict_do_update(index_elements=["customer_ref"], set_=update)
    return stmt


def _delta_select(stage: str, now: datetime) -> Any:
    """Per customer of the rows of the staging table ``stage`` (a copy of ``feedback``): the
    customers row those rows alone would give (what :func:`_delta_columns` computes in Python)."""
    f = Feedback.__table__.c
    s = table(stage, *(column(c, f[c].type) for c in DELTA_COLUMNS)).c
    return (
        select(
            *_customer_columns(s),
            literal(now, TZ),
        )
        .where(s.customer_ref.is_not(None), s.customer_ref != "")
        .group_by(s.customer_ref)
    )


def add_new_feedback(conn: Connection, cols: Mapping[str, Sequence[Any]], now: datetime | None = None,
                     stage: str | None = None) -> int:
    """Fold feedback rows the caller's transaction has just inserted, all of them new (never rows that
    replaced stored ones: those need :func:`refresh_customer_refs`), into ``customers``; ``cols`` holds
    at least :data:`DELTA_COLUMNS`, column-wise. ``stage``: a staging table holding the same rows (the
    aggregates are then computed by the database). Returns the number of customers touched (-1: not
    counted, with ``stage``)."""
    now = now or datetime.now(UTC)
    if stage is not None:
        conn.execute(_add_stmt(conn.dialect.name).from_select(COLUMNS, _delta_select(stage, now)))
        return -1
    delta = _delta_columns(cols, now)
    if not delta["customer_ref"]:
        return 0
    bulk.upsert_columns(conn, Customer.__table__, delta, lambda: _add_stmt(conn.dialect.name))
    return len(delta["customer_ref"])
