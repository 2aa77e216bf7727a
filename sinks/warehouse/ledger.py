"""The erasure ledger (migration ``0015_erasure_ledger``): keyed hashes of erased customers.

``feedback erase`` records every reference it erased; the warehouse sink and DLQ replay consult the
ledger so an erased customer's records still in Kafka (raw, enriched, DLQ topics, until their
retention runs out) are never written back. The ledger holds keyed hashes only, never an address.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Engine, Integer, String, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from pipeline import metrics
from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.schema import FeedbackRecord
from sinks.warehouse.models import Base

log = get_logger(__name__)
R = TypeVar("R", bound=FeedbackRecord)


class ErasedCustomer(Base):
    """One erased customer reference (a keyed hash); ``seq`` orders additions for incremental reads."""

    __tablename__ = "erasure_ledger"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    erased_ref: Mapped[str] = mapped_column(String(100), index=True, unique=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


def record_erased(conn: Connection, refs: Iterable[str]) -> int:
    """Add ``refs`` to the ledger (those already there are skipped); the number added."""
    table: Any = ErasedCustomer.__table__
    wanted = sorted(set(refs))
    if not wanted:
        return 0
    known = set(conn.execute(select(table.c.erased_ref).where(table.c.erased_ref.in_(wanted))).scalars())
    now = datetime.now(UTC)
    new = [{"erased_ref": r, "erased_at": now} for r in wanted if r not in known]
    if new:
        conn.execute(table.insert(), new)
    return len(new)


class ErasureLedger:
    """A cached copy of the ledger: :meth:`refresh` reads only rows added since the last call (one
    indexed query), so a sink pays one lookup per batch, and :meth:`is_erased` is a set lookup."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._refs: set[str] = set()
        self._seq = 0

    def refresh(self) -> None:
        """Read the rows added since the last call; a database that cannot be read is a TransientError."""
        table: Any = ErasedCustomer.__table__
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(table.c.seq, table.c.erased_ref).where(table.c.seq > self._seq)
                                    .order_by(table.c.seq)).all()
        except DBAPIError as exc:
            raise TransientError(f"erasure ledger not readable: {str(exc.orig)[:300]}", retry_after=None) from exc
        for seq, ref in rows:
            self._refs.add(ref)
            self._seq = max(self._seq, seq)

    def kept(self, items: Sequence[R], stage: str = "sink") -> list[R]:
        """``items`` without the records of erased customers (ledger refreshed once); each dropped record
        is counted; a batch logs one line with the count and up to five feedback ids (no customer
        reference, no text)."""
        self.refresh()
        if not self._refs:
            return list(items)
        out, dropped = [], []
        for item in items:
            if self.is_erased(item.customer_ref):
                dropped.append(str(item.feedback_id))
            else:
                out.append(item)
        if dropped:  # one line per batch, not per record (a replay of a large topic drops thousands)
            metrics.ERASED_DROPPED.labels(stage).inc(len(dropped))
            log.info("records of erased customers dropped", count=len(dropped), stage=stage,
                     feedback_ids=dropped[:5], more=max(0, len(dropped) - 5))
        return out

    def is_erased(self, customer_ref: str | None) -> bool:
        return bool(customer_ref) and customer_ref in self._refs

    def __len__(self) -> int:
        return len(self._refs)
