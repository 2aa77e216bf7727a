"""Durable e-mail state: per-folder checkpoints in the kernel's state store, and known feedback ids.

A folder's checkpoint is the state-store entry namespace ``email:<account>``, key ``<folder>``, value
``{"uidvalidity", "last_uid"}``: the folder's UIDVALIDITY and the highest UID whose records (and dead
letters) the broker acknowledged. The former table ``email_checkpoints`` (migration ``0002_email``)
stays declared so that Alembic sees it; migration ``0011_state`` copied its rows into the state store.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Engine, String, inspect, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.state import SqlStateStore
from sinks.warehouse.db import migrate
from sinks.warehouse.models import Base, Feedback

log = get_logger(__name__)


class EmailCheckpoint(Base):
    """The former checkpoint table (no longer written; its rows moved to ``source_state`` in 0011)."""

    __tablename__ = "email_checkpoints"

    account: Mapped[str] = mapped_column(String(320), primary_key=True)
    folder: Mapped[str] = mapped_column(String(500), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


def cursor(uidvalidity: int, last_uid: int) -> dict[str, int]:
    """A folder's checkpoint as the state store keeps it."""
    return {"uidvalidity": uidvalidity, "last_uid": last_uid}


def migrate_with_retry(engine: Engine, attempts: int = 8) -> None:
    """Apply the migrations; other components may be migrating the same database at the same time."""
    for attempt in range(1, attempts + 1):
        try:
            migrate(engine)
            return
        except SQLAlchemyError as exc:
            if attempt == attempts:
                raise TransientError(f"warehouse migration failed: {exc}"[:500], retry_after=5) from exc
            log.info("migration raced or failed; retrying", attempt=attempt, error=str(exc)[:200])
            time.sleep(min(0.5 * attempt, 3.0))


def namespace(account: str) -> str:
    """The account's namespace in the state store (one key per folder)."""
    return f"email:{account}"


class CheckpointStore:
    """Reads and advances folder checkpoints in the state store (each save its own committed
    transaction), and tells which feedback ids the warehouse already holds."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.state = SqlStateStore(engine)
        self._feedback_table: bool | None = None

    def get(self, account: str, folder: str) -> Checkpoint | None:
        value = self.state.get(namespace(account), folder)
        return Checkpoint(int(value["uidvalidity"]), int(value["last_uid"])) if value else None

    def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        self.state.save(namespace(account), {folder: cursor(uidvalidity, last_uid)})

    def known(self, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        """Which of ``ids`` already have a warehouse row (so need not be published again)."""
        wanted = list(ids)
        if not wanted:
            return set()
        try:
            if self._feedback_table is None or not self._feedback_table:
                self._feedback_table = inspect(self.engine).has_table("feedback")
            if not self._feedback_table:
                return set()
            found: set[uuid.UUID] = set()
            with self.engine.connect() as conn:
                for start in range(0, len(wanted), 500):
                    chunk = wanted[start:start + 500]
                    rows = conn.execute(select(Feedback.feedback_id).where(Feedback.feedback_id.in_(chunk)))
                    found.update(r[0] for r in rows)
            return found
        except OperationalError as exc:
            raise TransientError(f"warehouse unavailable: {exc.orig!r}"[:500], retry_after=2) from exc
