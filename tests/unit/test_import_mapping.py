"""Survey exports into records: readers (CSV/JSONL/XLSX), column mapping, conversions, identity, counting."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connectors.backfill.importer import WarehouseIds, import_file
from connectors.backfill.mapping import Mapping, parse_score, parse_time, row_to_record
from connectors.backfill.readers import count_rows, detect_format, read_rows
from pipeline.errors import ConfigError, RecordError
from pipeline.schema import EnrichedFeedback, customer_ref

KEY = b"unit-key"

CSV = (
    "\ufeffResponse ID;Submitted At;How likely are you to recommend us?;What could we do better?;Email\n"
    "r1;2025-03-01 14:30;9;Great service, thanks;ann@example.org\n"
    "r2;2025-03-02T08:00:00+01:00;3;Parcel came late;BOB@example.org\n"
    ";;;;\n"
    "r3;2025-03-03;11;Score out of range;\n"
    "r4;2025-03-04;7;;\n"
)


def test_csv_sniffs_the_delimiter_skips_blank_rows_and_strips_the_bom(tmp_path: Path) -> None:
    path = tmp_path / "nps.csv"
    path.write_text(CSV, encoding="utf-8")
    rows = list(read_rows(path, detect_format(path)))
    assert [n for n, _ in rows] == [2, 3, 5, 6]
    assert rows[0][1]["Response ID"] == "r1" and rows[0][1]["Email"] == "ann@example.org"
    assert count_rows(path, "csv") == 5  # header excluded; the blank-looking row ";;;;" is counted, not read


def test_headers_are_recognised_without_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "nps.csv"
    path.write_text("id,date,score,comment,email\n1,2025-01-01,8,ok,a@b.org\n")
    resolved = Mapping.load(None).resolve(["id", "date", "score", "comment", "email"])
    assert resolved.columns == {"text": "comment", "nps": "score", "date": "date", "email": "email", "id": "id"}
    survey = ["Response ID", "Submitted At", "How likely are you to recommend us?", "Why that score?", "E-mail"]
    assert Mapping.load(None, columns={"text": "Why that score?"}).resolve(survey).columns == {
        "text": "Why that score?", "nps": "How likely are you to recommend us?", "date": "Submitted At",
        "email": "E-mail", "id": "Response ID"}
    with pytest.raises(ConfigError, match="not in the file"):
        Mapping.load(None, columns={"text": "Kommentar"}).resolve(["comment"])
    with pytest.raises(ConfigError, match="no comment column"):
        Mapping.load(None).resolve(["score", "date"])


def test_mapping_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("dataset: nps-2025\nsource: webform\ncolumns: {text: Comment, nps: Score}\n"
                    "timezone: Europe/Berlin\nattributes: [Country]\n")
    mapping = Mapping.load(path, columns={"nps": "NPS"}, date_format="%d/%m/%Y")
    assert mapping.columns == {"text": "Comment", "nps": "NPS"} and mapping.source == "webform"
    assert mapping.date_format == "%d/%m/%Y" and mapping.dataset == "nps-2025"
    path.write_text("columns: {comment: X}\n")
    with pytest.raises(ConfigError, match="unknown field"):
        Mapping.load(path)
    path.write_text("timezone: Mars/Olympus\n")
    with pytest.raises(ConfigError, match="time zone"):
        Mapping.load(path)


@pytest.mark.parametrize(("value", "expected"), [("9", 9), (9, 9), (9.0, 9), ("10,0", 10), ("", None), (None, None)])
def test_scores(value: object, expected: int | None) -> None:
    assert parse_score(value, "nps", 0, 10) == expected


@pytest.mark.parametrize("value", ["11", "-1", "7.5", "nine"])
def test_bad_scores_are_rejected_with_a_reason(value: str) -> None:
    with pytest.raises(RecordError) as err:
        parse_score(value, "nps", 0, 10)
    assert err.value.reason == "invalid_nps"


def test_times() -> None:
    assert parse_time("2025-03-01T14:30:00+01:00", None, "UTC") == datetime(2025, 3, 1, 13, 30, tzinfo=UTC)
    assert parse_time("2025-03-01 14:30", None, "Europe/Berlin") == datetime(2025, 3, 1, 13, 30, tzinfo=UTC)
    assert parse_time("01/03/2025 14:30", "%d/%m/%Y %H:%M", "UTC") == datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    assert parse_time(datetime(2025, 3, 1, 14, 30), None, "UTC") == datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    assert parse_time(1740839400, None, "UTC") == datetime(2025, 3, 1, 14, 30, tzinfo=UTC)
    with pytest.raises(RecordError, match="invalid_date"):
        parse_time("yesterday", None, "UTC")


def test_identity_is_deterministic_and_the_address_never_leaves() -> None:
    mapping = Mapping.load(None).resolve(["id", "date", "score", "comment", "email"])
    row = {"id": "17", "date": "2025-01-05", "score": "4", "comment": "Too slow", "email": "Ann@Example.org "}
    a = row_to_record(row, mapping, KEY, "survey")
    b = row_to_record(dict(row), mapping, KEY, "survey")
    assert a.feedback_id == b.feedback_id and a.source_ref == "import:survey:17"
    assert row_to_record(row, mapping, KEY, "other").feedback_id != a.feedback_id  # ids are namespaced
    assert a.customer_ref == customer_ref("ann@example.org", KEY)
    assert "example.org" not in a.model_dump_json()
    no_id = Mapping.load(None).resolve(["date", "score", "comment"])
    c = row_to_record({"date": "2025-01-05", "score": "4", "comment": "Too slow"}, no_id, KEY, "x")
    d = row_to_record({"date": "2025-01-05", "score": "4", "comment": "Too slow"}, no_id, KEY, "renamed-file")
    e = row_to_record({"date": "2025-01-05", "score": "5", "comment": "Too slow"}, no_id, KEY, "x")
    assert c.feedback_id == d.feedback_id != e.feedback_id  # hash of the values: the file name does not matter
    assert c.nps_score == 4 and c.event_time == datetime(2025, 1, 5, tzinfo=UTC) and "backfill" in c.tags


def test_jsonl_bad_lines_are_rejected_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text('{"comment": "fine", "score": 9}\nnot json\n[1, 2]\n\n{"comment": "", "score": 5}\n'
                    '{"comment": "fine", "score": 9}\n{"comment": " ", "score": ""}\n')
    summary = import_file(path, "jsonl", Mapping.load(None), KEY, sink=None)
    # row 5 is score-only (accepted); row 7 has neither a comment nor a score
    assert summary.as_dict() == {"read": 6, "published": 2, "rejected": 3, "duplicates": 1}
    assert dict(summary.by_reason) == {"invalid_json": 2, "empty_text": 1}
    assert [r.row for r in summary.rejects] == [2, 3, 7]


def test_xlsx_dates_and_numbers_come_typed(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "Responses"
    ws.append(["Submitted", "NPS", "Comment", "Plan"])
    ws.append([datetime(2025, 2, 1, 9, 15), 10, "Love the app", "premium"])
    ws.append([datetime(2025, 2, 2, 9, 15), 2, "Crashes all the time", None])
    ws.append([None, None, None, None])
    path = tmp_path / "survey.xlsx"
    wb.save(path)
    rows = list(read_rows(path, "xlsx", sheet="Responses"))
    assert len(rows) == 2 and rows[0][1]["NPS"] == 10
    mapping = Mapping.load(None, columns={"date": "Submitted"}).resolve(list(rows[0][1]))
    record = row_to_record(rows[0][1], mapping, KEY, "survey")
    assert record.event_time == datetime(2025, 2, 1, 9, 15, tzinfo=UTC) and record.product == "premium"
    with pytest.raises(ConfigError, match="no sheet"):
        list(read_rows(path, "xlsx", sheet="Other"))


def test_rows_already_in_the_warehouse_are_duplicates(tmp_path: Path) -> None:
    from sinks.warehouse.db import make_engine, migrate
    from sinks.warehouse.writer import WarehouseWriter
    from tests.bench.warehouse_samples import enriched_sample

    path = tmp_path / "again.csv"
    path.write_text("id,comment,score\n1,first,9\n2,second,3\n3,third,6\n")
    mapping = Mapping.load(None)
    first = [row_to_record(r, mapping.resolve(["id", "comment", "score"]), KEY, "again")
             for _, r in read_rows(path, "csv")]
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    migrate(engine)
    template = enriched_sample(1)[0].model_dump(exclude={"feedback_id", "source", "source_ref"})
    WarehouseWriter(engine).write([EnrichedFeedback(**template, source=rec.source, source_ref=rec.source_ref)
                                   for rec in first[:2]])  # the first two rows went through before
    known = WarehouseIds(url)
    try:
        summary = import_file(path, "csv", mapping, KEY, sink=None, known=known)
    finally:
        known.close()
    assert summary.as_dict() == {"read": 3, "published": 1, "rejected": 0, "duplicates": 2}
    assert json.dumps(summary.as_dict())  # the --json output
    assert WarehouseIds(f"sqlite:///{tmp_path / 'missing.db'}").existing([first[0].feedback_id]) == set()  # type: ignore[list-item]
    assert not (tmp_path / "missing.db").exists()  # asking never creates a warehouse
