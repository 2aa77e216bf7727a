"""The sink's bulk write path: COPY into a staging table on PostgreSQL, batched executemany elsewhere.

On PostgreSQL a batch of at least :data:`COPY_MIN_ROWS` rows is streamed with ``COPY ... FROM STDIN``
into a temporary staging table (one per session, emptied at commit) and moved into the target with the writer's own
``INSERT ... ON CONFLICT`` statement turned into ``INSERT ... SELECT``, so the conflict rule is the
writer's, never a second copy of it. Plain inserts (rows of a child table whose old rows the writer
has just deleted) are COPYed straight into the target. Smaller batches and SQLite use one
``executemany`` of the same statement (SQLite's executemany runs in C, one prepared statement).

Rows come either as dicts (``upsert``, ``insert_rows``) or column-wise (``upsert_columns``,
``insert_columns``, ``insert_new_columns``: one list of values per column, all of the same length),
which is what the sink builds: values are converted a column at a time, mostly by C-level ``map``
calls (a repeated value once), and the COPY payload is assembled as text in a few string operations
per column instead of per value. ``IN`` lists of ids go to PostgreSQL as one array-literal parameter.
A column shared by several tables (the feedback id of the feedback, category and aspect rows) can be
converted once per batch with :func:`bind_column` (a :class:`Bound` column, passed through as is).

Guarantees: the result is the same as ``conn.execute(stmt, rows)``; everything happens on the
caller's connection, inside the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, Uuid, any_, bindparam, column, delete, insert, select, table
from sqlalchemy.dialects.postgresql import ARRAY

from sinks.warehouse.bulk_values import (  # noqa: F401  (re-exported: callers import them from here)
    _COMPILED,
    _ROWCOUNT,
    COPY_MIN_ROWS,
    Bound,
    Columns,
    _bind_column,
    _Const,
    _copy,
    _copy_text_column,
    _length,
    _quote,
    _use_copy,
    bind_column,
    columns_to_rows,
    pg_array_literal,
    raw_values,
    repeat_each,
    rows_to_columns,
    stage_name,
    staged,
    uuid_hex,
)


def _compiled(stmt: Any, dialect: Any, keys: tuple[str, ...]) -> tuple[str, list[tuple[str, Any] | _Const]] | None:
    """(SQL, parameter slots in placeholder order) of ``stmt`` for ``keys``: ``(key, bound type impl)``
    for a row value, ``(value,)`` for a literal of the statement itself (bind-processed once); None
    when a parameter is neither. Cached per statement object (statements compare by identity; the
    writer and :func:`insert_columns` reuse theirs), so a batch does not recompile."""
    cache_key = (stmt, dialect.name, keys)
    if cache_key in _COMPILED:
        return _COMPILED[cache_key]
    compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
    known = set(keys)
    slots: list[tuple[str, Any] | _Const] | None = []
    for name in compiled.positiontup or []:
        bind = compiled.binds[name]
        impl = bind.type.dialect_impl(dialect)
        if bind.key in known:
            slots.append((bind.key, impl))  # type: ignore[union-attr]
        elif not bind.required and bind.callable is None and not bind.expanding:
            proc = impl.bind_processor(dialect)
            slots.append((proc(bind.value) if proc else bind.value,))  # type: ignore[union-attr]
        else:
            slots = None
            break
    result = (str(compiled), slots) if slots is not None else None
    if len(_COMPILED) >= 256:
        _COMPILED.clear()
    _COMPILED[cache_key] = result
    return result


def executemany_columns(conn: Connection, stmt: Any, cols: Columns) -> int:
    """``conn.execute(stmt, rows)`` for the rows ``cols`` holds, with the statement compiled once and
    SQLAlchemy's per-row parameter bookkeeping skipped: each column goes through its type's bind
    processor (so it is stored exactly as SQLAlchemy would store it) and the driver's executemany
    gets plain tuples. Returns the driver's rowcount (rows inserted, updated or deleted; -1 unknown)."""
    dialect = conn.dialect
    n = _length(cols)
    if not n:
        return 0
    compiled = _compiled(stmt, dialect, tuple(cols)) if dialect.paramstyle in ("qmark", "format", "numeric") else None
    if compiled is None:
        result = conn.execute(stmt, columns_to_rows(cols), execution_options=_ROWCOUNT)
    else:
        sql, slots = compiled
        values = [_bind_column(s[1], dialect, cols[s[0]]) if len(s) == 2 else [s[0]] * n for s in slots]
        result = conn.exec_driver_sql(sql, list(zip(*values, strict=True)), execution_options=_ROWCOUNT)
    return int(result.rowcount) if dialect.supports_sane_multi_rowcount else -1


def executemany(conn: Connection, stmt: Any, rows: Sequence[dict[str, Any]]) -> None:
    """:func:`executemany_columns` of dict rows."""
    if not rows:
        return
    executemany_columns(conn, stmt, rows_to_columns(rows))


def _stage(conn: Connection, target: Table | Any, cols: Columns) -> Any:
    """COPY the rows of ``cols`` into the session's temporary copy of ``target`` (emptied at commit; one
    filling per transaction); returns a ``SELECT`` of its columns, for ``INSERT ... SELECT``.

    The staging table is created once per database session and kept (``ON COMMIT DELETE ROWS``, an
    in-place truncation of a table that is never WAL-logged), not created and dropped in every
    transaction, which wrote and deleted a catalog row per column each time."""
    stage = stage_name(target)
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {_quote(stage)} (LIKE {_quote(target.name)} INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    )
    _copy(conn, _quote(stage), list(cols), cols)
    return select(*(column(c) for c in cols)).select_from(table(stage))


def upsert_columns(conn: Connection, target: Table | Any, cols: Columns, stmt_factory: Callable[[], Any]) -> int:
    """Upsert the rows of ``cols`` into ``target`` with ``stmt_factory()`` (an INSERT ... ON CONFLICT)."""
    n = _length(cols)
    if not n:
        return 0
    stmt = stmt_factory()
    if not _use_copy(conn, n):
        executemany_columns(conn, stmt, cols)
        return n
    conn.execute(stmt.from_select(list(cols), _stage(conn, target, cols)))
    return n


def insert_new_columns(conn: Connection, target: Table | Any, cols: Columns, insert_stmt: Any,
                       upsert_stmt: Any, keep: Callable[[], Sequence[int] | None] | None = None) -> bool:
    """Write the rows of ``cols`` into ``target``: first ``insert_stmt`` (an ``INSERT ... ON CONFLICT DO
    NOTHING``), then, only when it did not insert every row (some ids already existed, or the driver
    cannot tell), ``upsert_stmt`` (the ``INSERT ... ON CONFLICT DO UPDATE``) over all of them; on
    PostgreSQL both read one staging table. The result is the upsert's.

    ``keep``, when given, is called before that upsert (after the insert) and may name the positions
    of the rows to upsert (None: all of them); the others are left out of it (a row the caller refuses
    to update).

    Returns True when this call inserted every row: none existed, committed or being written by
    another transaction (an ``ON CONFLICT`` insert waits for those), so nothing keyed by these ids can
    exist yet either.
    """
    n = _length(cols)
    if not n:
        return True
    if not _use_copy(conn, n):
        if executemany_columns(conn, insert_stmt, cols) == n:
            return True
        kept = keep() if keep is not None else None
        executemany_columns(conn, upsert_stmt, cols if kept is None else take(cols, kept))
        return False
    source = _stage(conn, target, cols)
    columns = list(cols)
    inserted = conn.execute(insert_stmt.from_select(columns, source), execution_options=_ROWCOUNT).rowcount
    if conn.dialect.supports_sane_rowcount and inserted == n:
        return True
    kept = keep() if keep is not None else None
    if kept is None:
        conn.execute(upsert_stmt.from_select(columns, source))
    else:  # the staging table holds every row: fill it again with the kept ones
        conn.exec_driver_sql(f"DELETE FROM {_quote(stage_name(target))}")
        upsert_columns(conn, target, take(cols, kept), lambda: upsert_stmt)
    return False


def take(cols: Columns, positions: Sequence[int]) -> dict[str, list[Any]]:
    """The rows of ``cols`` at ``positions`` (a :class:`Bound` column stays one)."""
    out: dict[str, list[Any]] = {}
    for name, values in cols.items():
        picked = [values[i] for i in positions]
        out[name] = Bound(picked, [values.raw[i] for i in positions]) if type(values) is Bound else picked
    return out


def upsert(conn: Connection, target: Table | Any, rows: Sequence[dict[str, Any]],
           stmt_factory: Callable[[], Any]) -> int:
    """Upsert ``rows`` into ``target`` with the statement ``stmt_factory()`` builds (an INSERT ... ON CONFLICT)."""
    return upsert_columns(conn, target, rows_to_columns(rows), stmt_factory)


_INSERTS: dict[tuple[str | None, str], Any] = {}


def insert_columns(conn: Connection, target: Table | Any, cols: Columns) -> int:
    """Plain insert of the rows of ``cols`` (no conflicts expected): COPY on PostgreSQL, executemany elsewhere."""
    n = _length(cols)
    if not n:
        return 0
    if not _use_copy(conn, n):
        key = (target.schema, target.name)
        stmt = _INSERTS.get(key)
        if stmt is None or stmt.table is not target:
            stmt = _INSERTS[key] = insert(target)
        executemany_columns(conn, stmt, cols)
        return n
    schema = f"{_quote(target.schema)}." if target.schema else ""
    _copy(conn, schema + _quote(target.name), list(cols), cols)
    return n


def insert_rows(conn: Connection, target: Table | Any, rows: Sequence[dict[str, Any]]) -> int:
    """Plain insert of ``rows`` (no conflicts expected): COPY on PostgreSQL, executemany elsewhere."""
    return insert_columns(conn, target, rows_to_columns(rows))


def delete_in(conn: Connection, column: Any, values: Sequence[Any], chunk: int = 900) -> int:
    """``DELETE FROM <column's table> WHERE column IN values``: one ``= ANY(array)`` statement on
    PostgreSQL (a short query psycopg prepares once); on SQLite one prepared ``DELETE ... WHERE
    column = ?`` run by executemany (in C, an index probe per value); chunks of ``chunk`` bound values
    elsewhere."""
    if not values:
        return 0
    values = raw_values(values)
    target = column.table
    name = (f"{_quote(target.schema)}." if target.schema else "") + _quote(target.name)
    if conn.dialect.name == "postgresql":
        literal = pg_array_literal(values) if isinstance(column.type, Uuid) else None
        if literal is not None:
            return int(conn.exec_driver_sql(
                f"DELETE FROM {name} WHERE {_quote(column.name)} = ANY(%s::uuid[])", (literal,)).rowcount)
        return int(conn.execute(delete(target).where(column == any_(bindparam(
            "values", list(values), type_=ARRAY(column.type))))).rowcount)
    if conn.dialect.name == "sqlite":
        impl = column.type.dialect_impl(conn.dialect)
        params = [(v,) for v in _bind_column(impl, conn.dialect, list(values))]
        return int(conn.exec_driver_sql(f"DELETE FROM {name} WHERE {_quote(column.name)} = ?", params).rowcount)
    total = 0
    for start in range(0, len(values), chunk):
        total += conn.execute(delete(target).where(column.in_(list(values[start : start + chunk])))).rowcount
    return total
