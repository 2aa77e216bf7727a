"""The one state store: every source's cursors, in the warehouse database (table ``source_state``).

A cursor is a small JSON object saved under ``(namespace, key)``: the namespace names the source
instance (``zendesk:acme.zendesk.com``, ``email:support@example.com``), the key one independent
stream of it (a mailbox folder; ``cursor`` for a source with a single stream). The source runner
(:mod:`pipeline.sources`) saves a batch's cursors only after the broker acknowledged the batch.

The table belongs to the kernel. Alembic revision ``0011_state`` creates it in the warehouse and
copies the e-mail connector's former ``email_checkpoints`` rows into it; :meth:`SqlStateStore.setup`
creates it when it is missing (a source that runs before the warehouse sink migrated), so a source
needs nothing but the database URL.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Column, DateTime, Engine, MetaData, String, Table, Text, create_engine, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError, SQLAlchemyError

from pipeline.errors import ConfigError, TransientError

Cursor = dict[str, Any]

metadata = MetaData()

#: ``(namespace, key) -> value`` (a JSON object) and when it was last saved.
source_state = Table(
    "source_state", metadata,
    Column("namespace", String(300), primary_key=True),
    Column("key", String(500), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class StateStore(Protocol):
    """Where cursors live. Guarantees: :meth:`save` is durable when it returns and saves all of its
    entries or none (one transaction); :meth:`get` returns the last saved value or None."""

    def get(self, namespace: str, key: str) -> Cursor | None: ...

    def save(self, namespace: str, entries: Mapping[str, Cursor]) -> None: ...

    def delete(self, namespace: str, key: str | None = None) -> None: ...


class SqlStateStore:
    """The state store on a SQLAlchemy engine (SQLite or PostgreSQL).

    Guarantees: each :meth:`save` is one committed transaction (an upsert per entry); a database
    that cannot be reached raises :class:`~pipeline.errors.TransientError`, never anything else.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @classmethod
    def from_url(cls, url: str) -> SqlStateStore:
        """A store on its own engine for ``url``, its table set up."""
        store = cls(engine_for(url))
        store.setup()
        return store

    def setup(self, attempts: int = 5) -> None:
        """Create the table if it is missing (idempotent; tolerates another process doing the same)."""
        for attempt in range(1, attempts + 1):
            try:
                if not inspect(self.engine).has_table(source_state.name):
                    metadata.create_all(self.engine, checkfirst=True)
                return
            except SQLAlchemyError as exc:
                if attempt == attempts:
                    raise TransientError(f"state store unavailable: {exc}"[:500], retry_after=2) from exc
                time.sleep(0.2 * attempt)

    def get(self, namespace: str, key: str) -> Cursor | None:
        query = select(source_state.c.value).where(source_state.c.namespace == namespace,
                                                   source_state.c.key == key)
        try:
            with self.engine.connect() as conn:
                value = conn.execute(query).scalar_one_or_none()
        except OperationalError as exc:
            raise TransientError(f"state store unavailable: {exc.orig!r}"[:500], retry_after=2) from exc
        return None if value is None else dict(json.loads(value))

    def items(self, namespace: str) -> dict[str, Cursor]:
        """Every key of a namespace with its value."""
        query = select(source_state.c.key, source_state.c.value).where(source_state.c.namespace == namespace)
        try:
            with self.engine.connect() as conn:
                return {k: dict(json.loads(v)) for k, v in conn.execute(query)}
        except OperationalError as exc:
            raise TransientError(f"state store unavailable: {exc.orig!r}"[:500], retry_after=2) from exc

    def save(self, namespace: str, entries: Mapping[str, Cursor]) -> None:
        if not entries:
            return
        now = datetime.now(UTC)
        rows = [{"namespace": namespace, "key": k, "value": json.dumps(v, sort_keys=True), "updated_at": now}
                for k, v in entries.items()]
        stmt = (postgresql.insert(source_state) if self.engine.dialect.name == "postgresql"
                else sqlite.insert(source_state))
        stmt = stmt.on_conflict_do_update(index_elements=["namespace", "key"],
                                          set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at})
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, rows)
        except OperationalError as exc:
            raise TransientError(f"state store unavailable: {exc.orig!r}"[:500], retry_after=2) from exc

    def delete(self, namespace: str, key: str | None = None) -> None:
        """Forget a namespace's cursor ``key`` (all of them when None): the source starts over."""
        stmt = source_state.delete().where(source_state.c.namespace == namespace)
        if key is not None:
            stmt = stmt.where(source_state.c.key == key)
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except OperationalError as exc:
            raise TransientError(f"state store unavailable: {exc.orig!r}"[:500], retry_after=2) from exc


def engine_for(url: str) -> Engine:
    """An engine for the state store's database (SQLite waits up to 30 s for a lock); a bad URL is a
    ConfigError naming ``FEEDBACK_WAREHOUSE_URL``."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        return create_engine(url, pool_pre_ping=True, connect_args={"timeout": 30} if url.startswith("sqlite") else {})
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"FEEDBACK_WAREHOUSE_URL: {exc}") from exc


class MemoryStateStore:
    """The state store in a dict (tests, one-off runs). Guarantees: as :class:`StateStore`; not durable."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], Cursor] = {}
        self.saves: list[tuple[str, dict[str, Cursor]]] = []

    def get(self, namespace: str, key: str) -> Cursor | None:
        value = self.data.get((namespace, key))
        return None if value is None else dict(value)

    def save(self, namespace: str, entries: Mapping[str, Cursor]) -> None:
        self.saves.append((namespace, {k: dict(v) for k, v in entries.items()}))
        for key, value in entries.items():
            self.data[(namespace, key)] = json.loads(json.dumps(value))

    def delete(self, namespace: str, key: str | None = None) -> None:
        for ns, k in list(self.data):
            if ns == namespace and (key is None or k == key):
                del self.data[(ns, k)]
