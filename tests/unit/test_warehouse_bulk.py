"""The bulk write path's column conversions give exactly what SQLAlchemy / psycopg would send.

The sink converts a column at a time (C-level ``map`` calls, values formatted once per distinct value)
instead of one value at a time; these tests pin that the shortcuts change no stored value.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import JSON, Boolean, Date, DateTime, Float, Integer, String, Uuid, create_engine

from sinks.warehouse import bulk
from sinks.warehouse.sample_data import enriched_sample
from sinks.warehouse.writer import FEEDBACK_COLUMNS, category_columns, feedback_columns, feedback_row

SQLITE = create_engine("sqlite://").dialect
T0 = datetime(2026, 3, 1, 9, 30, 0, tzinfo=UTC)


def _sqlalchemy(type_: object, values: Sequence[object]) -> list[object]:
    impl = type_.dialect_impl(SQLITE)  # type: ignore[attr-defined]
    proc = impl.bind_processor(SQLITE)
    return [proc(v) if proc else v for v in values]


@pytest.mark.parametrize(("type_", "values"), [
    (DateTime(timezone=True), [T0, T0, T0 + timedelta(microseconds=1), T0.replace(microsecond=0), T0, T0]),
    (DateTime(timezone=True), [T0, None, T0, None, T0 + timedelta(days=400)]),
    (DateTime(timezone=True), [T0, T0.astimezone(timezone(timedelta(hours=2))), T0, T0]),  # one instant, two zones
    (Date(), [date(2026, 1, 5), date(2026, 1, 5), date(999, 12, 31), date(2026, 1, 5)]),
    (Date(), [date(2026, 1, 5), None, None, date(2026, 1, 5)]),
    (Uuid(), [uuid.uuid5(uuid.NAMESPACE_URL, str(n)) for n in range(5)] + [uuid.UUID(int=1)]),
    (Uuid(), [uuid.UUID(int=7), None]),
    (JSON(), [["sample"], ["sample"], [], {}, {"a": 1}, {"a": True}, {"a": 1.0}, ["x", "y"], ["x", "y"], None]),
    (JSON(), [["a"], ["a"], ["b\\n\""], ["a"]]),
    (Boolean(), [True, False, None, True]),
    (Float(), [0.0, -0.0, 0.0, 1.5, None]),
    (Integer(), [1, 1, 1, None, 2]),
    (String(), ["a", None, "b"]),
])
def test_sqlite_binding_matches_sqlalchemy(type_: object, values: list[object]) -> None:
    impl = type_.dialect_impl(SQLITE)  # type: ignore[attr-defined]
    assert list(bulk._bind_column(impl, SQLITE, values)) == _sqlalchemy(type_, values)


def test_repeated_values_keep_what_tells_them_apart() -> None:
    # 0.0 == -0.0 and one instant in two zones compare equal, but are stored differently
    text = bulk._copy_text_column([0.0, -0.0, 0.0, -0.0, 0.5, 0.5])
    assert text == ["0.0", "-0.0", "0.0", "-0.0", "0.5", "0.5"]
    later = T0.astimezone(timezone(timedelta(hours=2)))
    sqlite_text = bulk._bind_column(DateTime(timezone=True).dialect_impl(SQLITE), SQLITE, [T0, later, T0, later])
    assert sqlite_text == ["2026-03-01 09:30:00.000000", "2026-03-01 11:30:00.000000"] * 2


def test_copy_text_escapes_and_marks_nulls() -> None:
    awkward = ["tab\there", "new\nline", "cr\rx", "back\\slash \\N", "plain", None, "ünï 🚚"]
    assert bulk._copy_text_column(awkward) == [
        "tab\\there", "new\\nline", "cr\\rx", "back\\\\slash \\\\N", "plain", "\\N", "ünï 🚚"]
    assert bulk._copy_text_column([None, None]) == ["\\N", "\\N"]
    assert bulk._copy_text_column(["a\x00b", "c"]) is None  # no PostgreSQL text holds a NUL: psycopg decides
    assert bulk._copy_text_column([{"k": "a\tb"}, [], None]) == [json.dumps({"k": "a\tb"}).replace("\\", "\\\\"),
                                                                 "[]", "\\N"]
    assert bulk._copy_text_column([True, None, False]) == ["t", "\\N", "f"]
    assert bulk._copy_text_column([float("inf"), float("nan"), 1.25]) == ["Infinity", "NaN", "1.25"]
    ids = [uuid.uuid4(), None]
    assert bulk._copy_text_column(ids) == [ids[0].hex, "\\N"]  # type: ignore[union-attr]
    assert bulk._copy_text_column([T0, None]) == [T0.isoformat(), "\\N"]
    assert bulk._copy_text_column([date(2026, 1, 2)] * 3) == ["2026-01-02"] * 3
    assert bulk._copy_text_column([b"bytes"]) is None  # not formatted here: psycopg's own row path


def test_pg_array_literal_quotes_every_element() -> None:
    assert bulk.pg_array_literal(['a"b', "c\\d", "e,f", "{g}", " h ", "NULL"]) == \
        '{"a\\"b","c\\\\d","e,f","{g}"," h ","NULL"}'
    ids = [uuid.UUID(int=1), uuid.UUID(int=2)]
    assert bulk.pg_array_literal(ids) == "{" + ids[0].hex + "," + ids[1].hex + "}"
    assert bulk.pg_array_literal([1, 2]) is None
    assert bulk.pg_array_literal(["a\x00"]) is None


def test_columns_hold_what_feedback_row_holds() -> None:
    items = enriched_sample(300, seed=11, run="cols", days=10)
    now = datetime.now(UTC)
    cols = feedback_columns(items, now)
    assert list(cols) == FEEDBACK_COLUMNS
    assert bulk.columns_to_rows(cols) == [feedback_row(i, now) for i in items]
    cats = category_columns(items)
    expected = [{"feedback_id": i.feedback_id, "category": c.name, "confidence": c.confidence, "rank": n}
                for i in items for n, c in enumerate(i.categories)]
    assert bulk.columns_to_rows(cats) == expected


def test_datetimes_after_a_null_still_keep_their_zones() -> None:
    later = T0.astimezone(timezone(timedelta(hours=2)))
    values = [None, T0, later, T0, later, None, None, None]
    impl = DateTime(timezone=True).dialect_impl(SQLITE)
    assert bulk._bind_column(impl, SQLITE, values) == _sqlalchemy(DateTime(timezone=True), values)
    assert bulk._copy_text_column(values) == ["\\N" if v is None else v.isoformat() for v in values]
