"""Rows of a survey export: CSV (delimiter sniffed), JSON Lines, or an XLSX sheet (openpyxl).

Each reader yields ``(row_number, {header: value})``; row numbers are those a person sees in the
file (CSV/XLSX: the header is row 1; JSONL: line numbers). Blank rows and lines are skipped.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, RecordError

FORMATS = ("csv", "jsonl", "xlsx")
Row = dict[str, Any]


def detect_format(path: Path, given: str | None = None) -> str:
    """``csv``, ``jsonl`` or ``xlsx`` from ``given`` or the file name."""
    if given:
        if given not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
        return given
    suffix = path.suffix.lower().lstrip(".")
    if suffix in ("csv", "tsv", "txt"):
        return "csv"
    if suffix in ("jsonl", "ndjson", "json"):
        return "jsonl"
    if suffix in ("xlsx", "xlsm"):
        return "xlsx"
    raise ConfigError(f"cannot tell the format of {path.name}: use --format {'|'.join(FORMATS)}")


def read_rows(path: Path, fmt: str, sheet: str | None = None, encoding: str = "utf-8-sig") -> Iterator[tuple[int, Row]]:
    """Yield the file's rows. A JSONL line that is no JSON object comes as ``{"__error__": RecordError,
    "__raw__": line}`` so that the caller rejects that row with its reason and goes on."""
    if fmt == "csv":
        yield from _csv(path, encoding)
    elif fmt == "jsonl":
        yield from _jsonl(path, encoding)
    else:
        yield from _xlsx(path, sheet)


def _csv(path: Path, encoding: str) -> Iterator[tuple[int, Row]]:
    with path.open(newline="", encoding=encoding) as fh:
        sample = fh.read(64 * 1024)
        fh.seek(0)
        try:
            dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            dialect = csv.excel
        reader = csv.DictReader(fh, dialect=dialect)
        if not reader.fieldnames:
            return
        for n, row in enumerate(reader, start=2):
            values = {(k or "").strip(): v for k, v in row.items() if k is not None}
            if any(str(v).strip() for v in values.values() if v is not None):
                yield n, values


def _jsonl(path: Path, encoding: str) -> Iterator[tuple[int, Row]]:
    with path.open(encoding=encoding) as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                yield n, {"__error__": RecordError("invalid_json", f"line {n}: {exc.msg}"), "__raw__": line}
                continue
            if not isinstance(value, dict):
                yield n, {"__error__": RecordError("invalid_json", f"line {n}: not a JSON object"), "__raw__": line}
                continue
            yield n, value


def _xlsx(path: Path, sheet: str | None) -> Iterator[tuple[int, Row]]:
    from openpyxl import load_workbook

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a file that is not a workbook
        raise ConfigError(f"cannot open {path.name} as an XLSX workbook: {exc}") from exc
    try:
        if sheet is not None and sheet not in wb.sheetnames:
            raise ConfigError(f"no sheet {sheet!r} in {path.name} (sheets: {', '.join(wb.sheetnames)})")
        ws = wb[sheet] if sheet else wb.worksheets[0]
        rows = ws.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        names = [str(h).strip() if h is not None else f"column{i + 1}" for i, h in enumerate(header)]
        for n, values in enumerate(rows, start=2):
            if all(v is None or (isinstance(v, str) and not v.strip()) for v in values):
                continue
            yield n, dict(zip(names, values, strict=False))
    finally:
        wb.close()


def count_rows(path: Path, fmt: str, sheet: str | None = None) -> int | None:
    """Rows the file holds (for the progress bar), or None when counting would mean reading it twice."""
    if fmt == "xlsx":
        return None
    with path.open("rb") as fh:
        lines = sum(1 for line in fh if line.strip())
    return max(0, lines - 1) if fmt == "csv" else lines
