"""Values for the bulk write path (:mod:`sinks.warehouse.bulk`): rows turned into columns, columns
bound for a dialect a column at a time, and the text of PostgreSQL's ``COPY ... FROM STDIN``.

Guarantees: a converted column holds exactly what SQLAlchemy's own bind processing of each value would
give (so the statements in :mod:`sinks.warehouse.bulk` behave like ``conn.execute(stmt, rows)``); a
column whose values COPY's text format cannot carry (a NUL, a type it does not know) is reported as
``None`` and the caller lets psycopg format those rows.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from itertools import chain, repeat
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

from sqlalchemy import JSON, Boolean, Connection, Table, Uuid
from sqlalchemy.dialects import sqlite

#: Below this many rows a COPY round trip does not pay off; executemany is used.
COPY_MIN_ROWS = 64

#: SQLAlchemy keeps ``cursor.rowcount`` of INSERTs only when asked.
_ROWCOUNT = {"preserve_rowcount": True}
#: Column name -> that column's values (every list of one call has the same length).
Columns = Mapping[str, Sequence[Any]]

_NONE = type(None)
_ISO_SPACE_US = methodcaller("isoformat", " ", "microseconds")
_FIRST_26 = itemgetter(slice(0, 26))
_INT = attrgetter("int")
_TZINFO = attrgetter("tzinfo")
#: Values :func:`_map` looks at first: when they barely repeat, it does not look for repeats at all.
_SAMPLE = 64


#: Characters COPY's text format needs escaped (besides the NUL no PostgreSQL text may hold).
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_COPY_NULL = "\\N"
_FLOAT_SPECIAL = {"inf": "Infinity", "-inf": "-Infinity", "nan": "NaN"}


def _pg_text(value: Any) -> Any:
    """A value COPY's text format takes as is: JSON documents and UUIDs as text, the rest unchanged."""
    if isinstance(value, dict | list):
        return json.dumps(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def rows_to_columns(rows: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Dict rows (all with the keys of the first) as columns."""
    return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


def columns_to_rows(cols: Columns) -> list[dict[str, Any]]:
    keys = list(cols)
    return [dict(zip(keys, values, strict=True)) for values in zip(*(raw_values(cols[k]) for k in keys), strict=True)]


def _length(cols: Columns) -> int:
    return len(next(iter(cols.values()))) if cols else 0


class Bound(list):  # type: ignore[type-arg]
    """A column already converted for the connection's bulk path: the values :func:`_bind_column` gives
    for SQLite's executemany, or the text fields :func:`_copy_text_column` gives for PostgreSQL's COPY.
    ``raw`` holds the original values, for the paths that convert values themselves (SQLAlchemy's
    executemany of small batches, psycopg's row formatting). Made by :func:`bind_column`."""

    __slots__ = ("raw",)

    def __init__(self, converted: Sequence[Any], raw: Sequence[Any]) -> None:
        super().__init__(converted)
        self.raw = raw


def raw_values(values: Sequence[Any]) -> Sequence[Any]:
    """The original values of a column (of a :class:`Bound` one: its ``raw``)."""
    return values.raw if type(values) is Bound else values


def bind_column(dialect: Any, column: Any, values: list[Any]) -> list[Any]:
    """``values`` of the table column ``column`` converted once for the bulk paths of ``dialect`` (a
    :class:`Bound` column), so that a column several statements of a batch share (the feedback id of
    the feedback, category and aspect rows) is converted once; ``values`` unchanged where those paths
    do not take converted values (PostgreSQL batches too small for COPY, other drivers)."""
    if dialect.name == "postgresql":
        text = _copy_text_column(values) if len(values) >= COPY_MIN_ROWS else None
        return values if text is None else Bound(text, values)
    if dialect.paramstyle != "qmark":
        return values
    return Bound(_bind_column(column.type.dialect_impl(dialect), dialect, values), values)


def repeat_each(values: Sequence[Any], counts: Sequence[int]) -> list[Any]:
    """``values[i]`` ``counts[i]`` times, in order (a parent's key for each of its child rows); a
    :class:`Bound` column gives a :class:`Bound` column."""
    out = list(chain.from_iterable(map(repeat, values, counts)))
    if type(values) is Bound:
        return Bound(out, list(chain.from_iterable(map(repeat, values.raw, counts))))
    return out


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- PostgreSQL: COPY ... FROM STDIN in text format ---------------------------------------------------
def _escape_copy(values: Sequence[str]) -> list[str] | None:
    """``values`` escaped for COPY's text format, a column at a time: the column is joined with NUL (which
    no PostgreSQL text can hold), escaped in four C-level replaces if it needs it at all, and split
    again. None when a value holds a NUL (the caller falls back to psycopg's per-value path)."""
    joined = "\x00".join(values)
    if joined.count("\x00") != len(values) - 1:
        return None
    if _COPY_SPECIAL.search(joined) is None:
        return list(values)
    joined = joined.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return joined.split("\x00")


def _json_texts(values: Sequence[Any]) -> list[str]:
    """``json.dumps`` of each value; lists of strings (tags) and empty containers once per distinct value."""
    return _json_column(json.dumps, values)


def _map(fn: Callable[[Any], Any], values: Sequence[Any], null: Any = None,
         many: Callable[[Sequence[Any]], list[Any]] | None = None) -> list[Any]:
    """``[null if v is None else fn(v) for v in values]`` (``many(values)`` when given and no value is
    None), computed once per distinct value when values repeat (dates, scores, confidences, a batch's
    ``written_at``; judged on the first :data:`_SAMPLE` values): a C-level ``dict.fromkeys`` and
    ``map``. Values equal yet formatted differently (``0.0`` and ``-0.0``, one instant in two time
    zones) are never merged: a float column holding a zero, or datetimes of more than one time zone,
    are formatted one by one."""
    sample = values[:_SAMPLE]
    distinct = dict.fromkeys(values) if len(set(sample)) * 2 <= len(sample) + 1 else {}
    if distinct and len(distinct) * 2 <= len(values):
        kinds = set(map(type, distinct))
        mergeable = not (float in kinds and 0 in distinct) and \
            not (datetime in kinds and len(set(map(_TZINFO, filter(None, values)))) > 1)
        if mergeable:
            for key in distinct:
                distinct[key] = null if key is None else fn(key)
            return list(map(distinct.__getitem__, values))
    if None in (distinct or values):
        return [null if v is None else fn(v) for v in values]
    return many(values) if many is not None else list(map(fn, values))


def _copy_text_column(values: Sequence[Any]) -> list[str] | None:
    """One column as COPY text fields (the text psycopg's dumpers would send; UUIDs without hyphens,
    a form PostgreSQL reads alike), or None when a value is of a type this fast path does not format
    (the caller then uses psycopg's own row formatting)."""
    if type(values) is Bound:
        return values
    kinds = set(map(type, values))
    nullable = _NONE in kinds
    kinds.discard(_NONE)
    if not kinds:
        return [_COPY_NULL] * len(values)
    if kinds == {str}:
        text = _escape_copy([v if v is not None else "" for v in values] if nullable else values)
        if text is None or not nullable:
            return text
        return [_COPY_NULL if v is None else t for v, t in zip(values, text, strict=True)]
    if kinds <= {dict, list}:
        text = _escape_copy(_json_texts(values))  # None -> "null", replaced below
        if text is None or not nullable:
            return text
        return [_COPY_NULL if v is None else t for v, t in zip(values, text, strict=True)]
    if kinds == {int}:
        return _map(str, values, _COPY_NULL)
    if kinds == {float} or kinds == {int, float}:
        return _map(_float_text, values, _COPY_NULL, many=_float_texts)
    if kinds == {bool}:
        return _map(_bool_text, values, _COPY_NULL)
    if kinds == {uuid.UUID}:
        return [_COPY_NULL if v is None else v.hex for v in values] if nullable else uuid_hex(values)
    if kinds == {datetime}:
        return _map(datetime.isoformat, values, _COPY_NULL)
    if kinds == {date}:
        return _map(date.isoformat, values, _COPY_NULL)
    return None


def _float_text(value: float) -> str:
    text = str(value)
    return _FLOAT_SPECIAL.get(text, text)


def _float_texts(values: Sequence[float]) -> list[str]:
    text = list(map(str, values))
    return text if _FLOAT_SPECIAL.keys().isdisjoint(text) else [_FLOAT_SPECIAL.get(t, t) for t in text]


def _bool_text(value: bool) -> str:
    return "t" if value else "f"


def pg_array_literal(values: Sequence[Any]) -> str | None:
    """``values`` as a PostgreSQL array literal (``'{...}'``, to cast to the element type's array), for
    UUIDs and strings; None for anything else. One string parameter instead of psycopg dumping a
    list element by element."""
    kinds = set(map(type, values))
    if kinds == {uuid.UUID}:
        return "{" + ",".join(uuid_hex(values)) + "}"
    if kinds == {str}:
        joined = "\x00".join(values)
        if joined.count("\x00") != len(values) - 1:
            return None
        if "\\" in joined or '"' in joined:
            joined = joined.replace("\\", "\\\\").replace('"', '\\"')
        return '{"' + joined.replace("\x00", '","') + '"}'
    return None


def _copy(conn: Connection, target: str, columns: list[str], cols: Columns) -> None:
    raw = conn.connection.driver_connection
    collist = ", ".join(_quote(c) for c in columns)
    fields = [_copy_text_column(cols[c]) for c in columns]
    with raw.cursor() as cur, cur.copy(f"COPY {target} ({collist}) FROM STDIN") as copy:  # type: ignore[union-attr]
        if all(f is not None for f in fields):
            copy.write("".join([line + "\n" for line in map("\t".join, zip(*fields, strict=True))]).encode())
            return
        # a type the text path does not know: psycopg formats each row (JSON and UUIDs as text)
        for values in zip(*(raw_values(cols[c]) for c in columns), strict=True):
            copy.write_row([_pg_text(v) for v in values])


def _use_copy(conn: Connection, n: int) -> bool:
    return conn.dialect.name == "postgresql" and n >= COPY_MIN_ROWS


def staged(conn: Connection, target: Table | Any, n: int) -> str | None:
    """The staging table :func:`upsert_columns` and :func:`insert_new_columns` filled with ``n`` rows
    for ``target`` in this transaction, or None when they used none (SQLite, small batches)."""
    return stage_name(target) if _use_copy(conn, n) else None


def stage_name(target: Table | Any) -> str:
    return f"_stage_{target.name}"


# -- SQLite (and other positional drivers): one executemany of plain tuples ---------------------------
def _bind_column(impl: Any, dialect: Any, values: Sequence[Any]) -> Sequence[Any]:
    """``values`` through the column type's bind processor, as SQLAlchemy would bind them one by one.

    The usual types take C-level shortcuts that give the same values: SQLite's default DATETIME
    format is ``isoformat(" ", "microseconds")`` without the offset, its DATE format ``isoformat``,
    a character-based UUID is ``.hex``, a boolean without native support ``int(value)``; JSON
    documents of lists of strings (tags) and empty containers are serialized once per distinct value.
    A :class:`Bound` column is already converted.
    """
    if type(values) is Bound:
        return values
    proc = impl.bind_processor(dialect)
    if proc is None:
        return values
    kinds = set(map(type, values))
    if isinstance(impl, sqlite.DATETIME) and impl._storage_format == sqlite.DATETIME._storage_format:
        if kinds == {datetime}:
            return _map(_sqlite_datetime, values, many=_sqlite_datetimes)
        if kinds <= {datetime, _NONE}:
            return _map(_sqlite_datetime, values)
    elif isinstance(impl, sqlite.DATE) and impl._storage_format == sqlite.DATE._storage_format:
        if kinds <= {date, _NONE}:
            return _map(date.isoformat, values)
    elif isinstance(impl, Uuid) and impl.as_uuid and (not dialect.supports_native_uuid or not impl.native_uuid):
        if kinds == {uuid.UUID}:
            return uuid_hex(values)
    elif isinstance(impl, JSON):
        return _json_column(proc, values)
    elif isinstance(impl, Boolean) and not dialect.supports_native_boolean and kinds <= {bool, _NONE}:
        return list(map(_INT_BOOL.__getitem__, values))
    return list(map(proc, values))


_INT_BOOL = {True: 1, False: 0, None: None}


def _sqlite_datetime(value: datetime) -> str:
    return _FIRST_26(_ISO_SPACE_US(value))


def _sqlite_datetimes(values: Sequence[datetime]) -> list[str]:
    return [v.isoformat(" ", "microseconds")[:26] for v in values]  # faster than two maps of callers


def uuid_hex(values: Sequence[uuid.UUID]) -> list[str]:
    """``[v.hex for v in values]`` (the same 32 digits) in C-level calls."""
    return list(map(format, map(_INT, values), repeat("032x", len(values))))


def _json_column(proc: Callable[[Any], Any], values: Sequence[Any]) -> list[Any]:
    if set(map(type, values)) == {list} and set(map(type, chain.from_iterable(values))) <= {str}:
        lists = dict.fromkeys(map(tuple, values))  # lists of strings (tags): one dump per distinct list
        for as_tuple, value in zip(map(tuple, values), values, strict=True):
            if lists[as_tuple] is None:
                lists[as_tuple] = proc(value)
        return list(map(lists.__getitem__, map(tuple, values)))
    memo: dict[Any, Any] = {}
    out = []
    for value in values:
        kind = type(value)
        if kind is list and all(type(v) is str for v in value):
            key: Any = tuple(value)
        elif (kind is dict or kind is list) and not value:
            key = kind
        else:
            out.append(proc(value))
            continue
        try:
            out.append(memo[key])
        except KeyError:
            out.append(memo.setdefault(key, proc(value)))
    return out


#: A parameter of the statement's own (a literal): its already bind-processed value.
_Const = tuple[Any]
_COMPILED: dict[tuple[Any, ...], tuple[str, list[tuple[str, Any] | _Const]] | None] = {}
