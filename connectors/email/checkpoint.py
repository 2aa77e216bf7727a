"""Durable e-mail state: per-folder checkpoints in the kernel's state store, and known feedback ids.

A folder's checkpoint is the state-store entry namespace ``email:<account>``, key ``<folder>``, value
``{"uidvalidity", "last_uid"}``: the folder's UIDVALIDITY and the highest UID whose records (and dead
letters) the broker acknowledged. The former table ``email_checkpoints`` (migration ``0002_email``)
stays declared so that Alembic sees it; migration ``0011_state`` copied its rows into the state store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    MetaData,
    String,
    Table,
    Uuid,
    column,
    inspect,
    select,
    table,
)
from sqlalchemy.exc import OperationalError

from pipeline.errors import TransientError
from pipeline.logging import get_logger
from pipeline.state import SqlStateStore

log = get_logger(__name__)


metadata = MetaData()

#: The former checkpoint table (migration ``0002_email``): declared so that Alembic sees it; no
#: longer written (migration ``0011_state`` moved its rows to ``source_state``).
email_checkpoints = Table(
    "email_checkpoints", metadata,
    Column("account", String(320), primary_key=True),
    Column("folder", String(500), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

#: The warehouse's feedback ids, as far as :meth:`CheckpointStore.known` reads them (the type binds a
#: UUID as each dialect stores it: 32 hex digits on SQLite, native on PostgreSQL).
_feedback = table("feedback", column("feedback_id", Uuid()))


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


def cursor(uidvalidity: int, last_uid: int) -> dict[str, int]:
    """A folder's checkpoint as the state store keeps it."""
    return {"uidvalidity": uidvalidity, "last_uid": last_uid}


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
                    rows = conn.execute(select(_feedback.c.feedback_id).where(_feedback.c.feedback_id.in_(chunk)))
                    found.update(r[0] for r in rows)
            return found
        except OperationalError as exc:
            raise TransientError(f"warehouse unavailable: {exc.orig!r}"[:500], retry_after=2) from exc
