"""Durable e-mail state in the warehouse database: per-folder checkpoints and known feedback ids.

The table ``email_checkpoints`` (migration ``0002_email``) holds, per ``(account, folder)``, the
folder's UIDVALIDITY and the highest UID whose records (and dead letters) the broker acknowledged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, DateTime, Engine, String, Table, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.errors import TransientError
from pipeline.logging import get_logger
from sinks.warehouse.db import migrate
from sinks.warehouse.models import Base, Feedback

log = get_logger(__name__)


class EmailCheckpoint(Base):
    """One row per watched folder: UIDVALIDITY + the last UID acknowledged by the broker."""

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


class CheckpointStore:
    """Reads and advances folder checkpoints; each save is its own committed transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._feedback_table: bool | None = None

    def get(self, account: str, folder: str) -> Checkpoint | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(
                    select(EmailCheckpoint.uidvalidity, EmailCheckpoint.last_uid).where(
                        EmailCheckpoint.account == account, EmailCheckpoint.folder == folder)
                ).first()
        except OperationalError as exc:
            raise TransientError(f"checkpoint store unavailable: {exc.orig!r}"[:500], retry_after=2) from exc
        return Checkpoint(int(row[0]), int(row[1])) if row else None

    def save(self, account: str, folder: str, uidvalidity: int, last_uid: int) -> None:
        values = {"account": account, "folder": folder, "uidvalidity": uidvalidity, "last_uid": last_uid,
                  "updated_at": datetime.now(UTC)}
        table = EmailCheckpoint.__table__
        assert isinstance(table, Table)
        stmt = (postgresql.insert(table) if self.engine.dialect.name == "postgresql"
                else sqlite.insert(table))
        stmt = stmt.on_conflict_do_update(
            index_elements=["account", "folder"],
            set_={k: stmt.excluded[k] for k in ("uidvalidity", "last_uid", "updated_at")},
        )
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, values)
        except OperationalError as exc:
            raise TransientError(f"checkpoint store unavailable: {exc.orig!r}"[:500], retry_after=2) from exc

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
