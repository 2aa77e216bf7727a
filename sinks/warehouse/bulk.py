"""The sink's bulk write path: COPY into a staging table on PostgreSQL, batched executemany elsewhere.

On PostgreSQL a batch of at least :data:`COPY_MIN_ROWS` rows is streamed with ``COPY ... FROM STDIN``
into a temporary staging table (dropped at commit) and moved into the target with the writer's own
``INSERT ... ON CONFLICT`` statement turned into ``INSERT ... SELECT``, so the conflict rule is the
writer's, never a second copy of it. Plain inserts (rows of a child table whose old rows the writer
has just deleted) are COPYed straight into the target. Smaller batches and SQLite use one
``executemany`` of the same statement (SQLite's executemany runs in C, one prepared statement).

Guarantees: the result is the same as ``conn.execute(stmt, rows)``; everything happens on the
caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Connection, Table, any_, bindparam, column, delete, insert, select, table
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import ARRAY

#: Below this many rows a COPY round trip does not pay off; executemany is used.
COPY_MIN_ROWS = 64


def _pg_text(value: Any) -> Any:
    """A value COPY's text format takes as is: JSON documents and UUIDs as text, the rest unchanged."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _columnar(rows: Sequence[dict[str, Any]], procs: list[tuple[str, Any]]) -> list[tuple[Any, ...]]:
    """Rows as tuples in ``procs`` order, each value passed through its column's converter (or None)."""
    cols = [[p(r[k]) for r in rows] if p else [r[k] for r in rows] for k, p in procs]
    return list(zip(*cols, strict=True))


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _copy(conn: Connection, target: str, columns: list[str], rows: Sequence[dict[str, Any]]) -> None:
    raw = conn.connection.driver_connection
    collist = ", ".join(_quote(c) for c in columns)
    first = rows[0]
    procs = [(c, _pg_text if isinstance(first[c], dict | list | uuid.UUID) or first[c] is None else None)
             for c in columns]
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({collist}) FROM STDIN") as copy:  # type: ignore[union-attr]
        for values in _columnar(rows, procs):
            copy.write_row(values)


def _use_copy(conn: Connection, rows: Sequence[dict[str, Any]]) -> bool:
    return conn.dialect.name == "postgresql" and len(rows) >= COPY_MIN_ROWS


def _processor(impl: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The type's bind processor; SQLite's default DATETIME format is produced by ``isoformat`` in C
    (the same text: ``YYYY-MM-DD HH:MM:SS.ffffff``, no offset), JSON of empty containers is cached."""
    proc = impl.bind_processor(dialect)
    if proc is None:
        return None
    if isinstance(impl, sqlite.DATETIME) and impl._storage_format == sqlite.DATETIME._storage_format:
        datetime_type, slow = datetime, proc

        def fast_datetime(value: Any) -> Any:
            if type(value) is datetime_type:
                return value.isoformat(" ", "microseconds")[:26]
            return slow(value)

        return fast_datetime
    if isinstance(impl, JSON):
        empty = {"[]": proc([]), "{}": proc({})}
        slow_json = proc

        def fast_json(value: Any) -> Any:
            if not value and isinstance(value, list | dict):
                return empty["[]" if isinstance(value, list) else "{}"]
            return slow_json(value)

        return fast_json
    return proc  # type: ignore[no-any-return]


def executemany(conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """``conn.execute(stmt, rows)`` with the statement compiled once and SQLAlchemy's per-row
    parameter bookkeeping skipped: each value goes through its column type's bind processor (so it
    is stored exactly as SQLAlchemy would store it) and the driver's executemany gets plain tuples.
    """
    dialect = conn.dialect
    if dialect.paramstyle not in ("qmark", "format", "numeric") or not rows:
        conn.execute(stmt, list(rows))
        return
    compiled = stmt.compile(dialect=dialect, column_keys=list(rows[0]))
    order = compiled.positiontup or []
    keys = set(rows[0])
    if any(compiled.binds[name].key not in keys for name in order):  # literals in the statement
        conn.execute(stmt, list(rows))
        return
    procs = []
    for name in order:
        bind = compiled.binds[name]
        procs.append((bind.key, _processor(bind.type.dialect_impl(dialect), dialect)))
    params = _columnar(rows, procs)
    conn.exec_driver_sql(str(compiled), params)


def upsert(conn: Connection, target: Table | Any, rows: Sequence[dict[str, Any]],
           stmt_factory: Callable[[], Any]) -> int:
    """Upsert ``rows`` into ``target`` with the statement ``stmt_factory()`` builds (an INSERT ... ON CONFLICT)."""
    if not rows:
        return 0
    stmt = stmt_factory()
    if not _use_copy(conn, rows):
        executemany(conn, stmt, rows)
        return len(rows)
    columns = list(rows[0])
    stage = f"_stage_{target.name}"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_quote(stage)} (LIKE {_quote(target.name)} INCLUDING DEFAULTS) "
        "ON COMMIT DROP"
    )
    _copy(conn, _quote(stage), columns, rows)
    source: Any = select(*(column(c) for c in columns)).select_from(table(stage))
    conn.execute(stmt.from_select(columns, source))
    return len(rows)


def insert_rows(conn: Connection, target: Table | Any, rows: Sequence[dict[str, Any]]) -> int:
    """Plain insert of ``rows`` (no conflicts expected): COPY on PostgreSQL, executemany elsewhere."""
    if not rows:
        return 0
    if not _use_copy(conn, rows):
        executemany(conn, insert(target), rows)
        return len(rows)
    schema = f"{_quote(target.schema)}." if target.schema else ""
    _copy(conn, schema + _quote(target.name), list(rows[0]), rows)
    return len(rows)


def delete_in(conn: Connection, column: Any, values: Sequence[Any], chunk: int = 900) -> int:
    """``DELETE FROM <column's table> WHERE column IN values``: one ``= ANY(array)`` statement on
    PostgreSQL (a short query psycopg prepares once), chunks of ``chunk`` bound values elsewhere."""
    if not values:
        return 0
    target = column.table
    if conn.dialect.name == "postgresql":
        return int(conn.execute(delete(target).where(column == any_(bindparam(
            "values", list(values), type_=ARRAY(column.type))))).rowcount)
    total = 0
    for start in range(0, len(values), chunk):
        total += conn.execute(delete(target).where(column.in_(list(values[start : start + chunk])))).rowcount
    return total
