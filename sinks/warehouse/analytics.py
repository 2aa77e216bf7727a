"""Analytics tables kept by the sink: ``customers`` (one row per customer reference) and ``retention_log``.

The customers table is derived, never counted incrementally: :func:`refresh_customers` recomputes
the rows of the customers a batch touched from the ``feedback`` table, inside the sink's transaction.
Re-delivered records therefore never inflate a count, and a purge or an erasure that deleted
feedback brings the counts back in line (a customer left without feedback loses its row).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
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
    delete,
    exists,
    func,
    literal,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

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


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _in(column: Any, values: list[str], dialect: str) -> Any:
    """``column IN values``; on PostgreSQL ``= ANY(array)``: one parameter, a query prepared once."""
    if dialect == "postgresql":
        return column == any_(bindparam("refs", values, type_=ARRAY(String())))
    return column.in_(values)


def _aggregate(refs: list[str], now: datetime, dialect: str) -> Any:
    f = Feedback.__table__.c
    return (
        select(
            f.customer_ref,
            func.min(f.event_time),
            func.max(f.event_time),
            func.count(),
            _count_if(f.sentiment_label == "negative"),
            func.count(f.nps_score),
            _count_if(f.nps_class == "promoter"),
            _count_if(f.nps_class == "detractor"),
            func.count(f.csat_score),
            func.avg(cast(f.csat_score, Float)),
            literal(now, TZ),
        )
        .where(_in(f.customer_ref, refs, dialect))
        .group_by(f.customer_ref)
    )


COLUMNS = [c.name for c in Customer.__table__.columns]


def refresh_customers(conn: Connection, rows: Iterable[Mapping[str, Any]], prune: bool = False) -> int:
    """Recompute the customers of ``rows`` (feedback row dicts) from ``feedback``; returns how many.

    Call inside the transaction that wrote (or deleted) the feedback rows. With ``prune`` (after a
    delete) customers left without feedback lose their row; the sink's upserts never need it.
    """
    refs = sorted({r["customer_ref"] for r in rows if r.get("customer_ref")})
    if not refs:
        return 0
    now = datetime.now(UTC)
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    table: Any = Customer.__table__
    for i in range(0, len(refs), CHUNK):
        chunk = refs[i : i + CHUNK]
        stmt = insert(table).from_select(COLUMNS, _aggregate(chunk, now, conn.dialect.name))
        stmt = stmt.on_conflict_do_update(
            index_elements=["customer_ref"], set_={c: stmt.excluded[c] for c in COLUMNS if c != "customer_ref"}
        )
        conn.execute(stmt)
        if not prune:
            continue
        f = Feedback.__table__.c
        conn.execute(
            delete(table).where(_in(table.c.customer_ref, chunk, conn.dialect.name),
                                ~exists().where(f.customer_ref == table.c.customer_ref))
        )
    return len(refs)
