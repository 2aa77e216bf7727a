"""Engine creation and migrations for the warehouse (SQLite embedded, PostgreSQL in production)."""

from __future__ import annotations

import importlib
import os
import pkgutil
import shutil
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, MetaData, create_engine, event
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from pipeline.errors import ConfigError

MIGRATIONS = Path(__file__).with_name("migrations")
#: SQLite page cache per connection (negative: KiB) and WAL pages between automatic checkpoints.
SQLITE_CACHE_KIB = -65536
SQLITE_WAL_AUTOCHECKPOINT = 10000


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` whose errors never show statement parameters; SQLite gets WAL, a busy
    timeout, enforced foreign keys, a 64 MiB page cache and checkpoints every 10,000 WAL pages."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    try:
        # hide_parameters: an error never carries a statement's values (texts, customer references)
        # into a log or a dead letter
        engine = create_engine(url, pool_pre_ping=True, hide_parameters=True, **kwargs)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"FEEDBACK_WAREHOUSE_URL: {exc}") from exc
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            # the sink's batches dirty pages all over the id and customer indexes: a page cache that
            # holds them (64 MiB instead of 2) and a checkpoint every ~40 MB of WAL instead of every
            # 4 MB (each batch's pages are copied back once per checkpoint, not once per batch)
            cur.execute(f"PRAGMA cache_size={SQLITE_CACHE_KIB}")
            cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT}")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def explain(engine: Engine, exc: BaseException) -> str:
    """The database error, with the likely cause spelled out for SQLite files (read-only, disk full)."""
    message = str(getattr(exc, "orig", None) or exc)
    if engine.dialect.name == "sqlite" and engine.url.database:
        path = Path(engine.url.database)
        folder = path.parent
        if folder.exists() and (not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK))):
            return f"{message} (the SQLite file {path} or its folder is read-only)"
        if folder.exists() and shutil.disk_usage(folder).free < 1 << 20:
            return f"{message} (disk is full: {shutil.disk_usage(folder).free} bytes free under {folder})"
    return message


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def migrate(engine: Engine, revision: str = "heads") -> None:
    """Bring the schema to ``revision`` (idempotent; safe at every start).

    Components add their own revisions branching from ``0001``; ``heads`` applies every branch.
    """
    cfg = alembic_config()
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # A batch migration rebuilds a SQLite table (copy, drop, rename); with foreign keys enforced the
            # drop would cascade into every child table (feedback_categories, aspects ...) and empty them.
            # The pragma only takes effect outside a transaction.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"migration left rows without their parent: {broken[:5]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def current_revisions(engine: Engine) -> tuple[str, ...]:
    with engine.connect() as conn:
        return tuple(MigrationContext.configure(conn).get_current_heads())


def head_revisions() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


#: The entry-point group naming modules or ``MetaData`` objects that declare warehouse tables.
TABLES_GROUP = "feedback.tables"


def _metadata_of(obj: object) -> MetaData | None:
    if isinstance(obj, MetaData):
        return obj
    found = getattr(obj, "metadata", None)
    return found if isinstance(found, MetaData) else None


def declared_metadata() -> list[MetaData]:
    """Every ``MetaData`` holding warehouse tables, ``Base.metadata`` first, each once."""
    import sinks.warehouse
    from sinks.warehouse.models import Base

    for info in pkgutil.iter_modules(sinks.warehouse.__path__, "sinks.warehouse."):
        if not info.name.endswith(".migrations"):
            importlib.import_module(info.name)
    found = [Base.metadata]
    for ep in entry_points(group=TABLES_GROUP):
        meta = _metadata_of(ep.load())
        if meta is not None and all(meta is not m for m in found):
            found.append(meta)
    return found
