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
from sinks.warehouse.writer import FEEDBACK_COLUMNS, category_columns, feedback_columns, feedback_row
from tests.bench.warehouse_samples import enriched_sample

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


def test_a_bound_column_is_converted_once_and_keeps_its_raw_values() -> None:
    from sqlalchemy.dialects import postgresql

    from sinks.warehouse.models import Feedback

    table = Feedback.__table__
    ids = [uuid.uuid5(uuid.NAMESPACE_URL, str(n)) for n in range(100)]
    bound = bulk.bind_column(SQLITE, table.c.feedback_id, ids)
    assert type(bound) is bulk.Bound and bound.raw is ids
    assert list(bound) == _sqlalchemy(Uuid(), ids)
    impl = Uuid().dialect_impl(SQLITE)
    assert bulk._bind_column(impl, SQLITE, bound) is bound  # passed through, not converted again
    assert bulk._copy_text_column(bound) is bound
    assert bulk.columns_to_rows({"feedback_id": bound}) == [{"feedback_id": i} for i in ids]
    assert bulk.raw_values(bound) is ids and bulk.raw_values(ids) is ids
    children = bulk.repeat_each(bound, [2, 0, 1] + [0] * 97)
    assert type(children) is bulk.Bound
    assert list(children) == [ids[0].hex, ids[0].hex, ids[2].hex] and children.raw == [ids[0], ids[0], ids[2]]
    assert bulk.repeat_each(ids[:2], [1, 2]) == [ids[0], ids[1], ids[1]]
    times = [T0 + timedelta(seconds=n) for n in range(100)]
    assert list(bulk.bind_column(SQLITE, table.c.event_time, times)) == _sqlalchemy(DateTime(timezone=True), times)
    # PostgreSQL: COPY text, only for batches that take the COPY path (smaller ones bind through SQLAlchemy)
    pg = postgresql.dialect()
    assert list(bulk.bind_column(pg, table.c.feedback_id, ids)) == [i.hex for i in ids]
    assert list(bulk.bind_column(pg, table.c.event_time, times)) == [t.isoformat() for t in times]
    assert bulk.bind_column(pg, table.c.feedback_id, ids[: bulk.COPY_MIN_ROWS - 1]) == ids[: bulk.COPY_MIN_ROWS - 1]
    assert type(bulk.bind_column(pg, table.c.feedback_id, ids[: bulk.COPY_MIN_ROWS - 1])) is list


def test_customer_times_come_from_the_bound_event_times() -> None:
    from sinks.warehouse.analytics import _delta_columns
    from sinks.warehouse.models import Feedback

    items = enriched_sample(300, seed=4, run="delta", days=10, customers=20)
    now = datetime.now(UTC)
    plain = _delta_columns(feedback_columns(items, now), now)
    cols = feedback_columns(items, now)
    cols["event_time"] = bulk.bind_column(SQLITE, Feedback.__table__.c.event_time, cols["event_time"])
    delta = _delta_columns(cols, now)
    tz = DateTime(timezone=True)
    for name in ("first_seen_at", "last_seen_at"):
        assert type(delta[name]) is bulk.Bound
        assert delta[name].raw == plain[name]  # type: ignore[attr-defined]
        assert list(delta[name]) == _sqlalchemy(tz, plain[name])
    assert {k: list(bulk.raw_values(v)) for k, v in delta.items()} == {k: list(v) for k, v in plain.items()}
    # times in two zones: converted on their own (one instant, two stored texts)
    mixed = feedback_columns(items, now)
    mixed["event_time"] = [t.astimezone(timezone(timedelta(hours=2))) if n % 2 else t
                           for n, t in enumerate(mixed["event_time"])]
    mixed["event_time"] = bulk.bind_column(SQLITE, Feedback.__table__.c.event_time, mixed["event_time"])
    assert type(_delta_columns(mixed, now)["first_seen_at"]) is list
