"""``feedback backtest``: what the detector would have opened on a file or a stored period, offline.

The records go through the processor's own enrichment and windows (found by the entry point
``feedback.offline_signals``, so this module imports no processor code), then through the alert
sink's own :class:`~sinks.alerts.judge.SignalJudge` and incidents, on a throw-away SQLite file:
no broker, no warehouse. The incidents it prints are the ones the running pipeline would have
opened with the same ``FEEDBACK_SIGNAL_*`` settings.

Input (CSV with a header row, or JSON lines): ``text`` and ``event_time`` (ISO 8601) are required;
``id``, ``source`` (email|webform|ticket|event), ``channel``, ``product``, ``category`` (replaces the
tagger's categories, ``;``-separated), ``nps`` (0-10) and ``csat`` (1-5) are optional. A malformed
row is reported by row number and column, and nothing is judged.
"""

from __future__ import annotations

import csv
import json
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, insert, select

from pipeline.errors import ConfigError
from pipeline.schema import CategoryTag, EnrichedFeedback, FeedbackRecord
from pipeline.signal_schema import Incident, SignalWindow
from sinks.alerts import incidents
from sinks.alerts.judge import SignalJudge, config_from
from sinks.warehouse.db import make_engine, migrate
from sinks.warehouse.models import Feedback, FeedbackCategory

COLUMNS = {"id", "text", "event_time", "source", "channel", "product", "category", "nps", "csat"}
MAX_ERRORS = 20


@dataclass
class InputError(Exception):
    """Rows that cannot be replayed: (row number, column, what is wrong), the first ``MAX_ERRORS``."""

    problems: list[tuple[int, str, str]]

    def __str__(self) -> str:
        return "\n".join(f"row {r}, column {c}: {m}" for r, c, m in self.problems)


@dataclass
class Result:
    """What the replay produced: the incidents and how much was judged."""

    incidents: list[Incident] = field(default_factory=list)
    windows_judged: int = 0
    scopes: int = 0
    records: int = 0
    rejected: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"incidents": [i.model_dump(mode="json") for i in self.incidents], "windows_judged": self.windows_judged,
                "scopes": self.scopes, "records": self.records, "rejected": self.rejected}


def offline_signals(settings: Any) -> Any:
    """The registered observation path (``feedback.offline_signals``), configured like the processor."""
    found = {ep.name: ep for ep in entry_points(group="feedback.offline_signals")}
    if "default" not in found:
        raise ConfigError("no entry point 'default' in group feedback.offline_signals: reinstall the package")
    factory = found["default"].load()
    return factory(settings.signal_window, settings.signal_slow_window, settings.signal_slow_scopes)


def read_rows(path: Path, fmt: str | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, row) of a CSV (row 1 is the header) or JSON-lines file (row n is line n)."""
    kind = fmt or ("jsonl" if path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "csv")
    if not path.is_file():
        raise ConfigError(f"no such file: {path}")
    with path.open(encoding="utf-8-sig", newline="") as fh:
        if kind == "csv":
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"text", "event_time"} <= {f.strip().lower() for f in reader.fieldnames}:
                raise InputError([(1, "text/event_time", f"the header must name text and event_time; it has "
                                   f"{', '.join(reader.fieldnames or [])}")])
            for n, row in enumerate(reader, start=2):
                if None in row:
                    raise InputError([(n, "-", f"{len(row[None]) + len(reader.fieldnames)} fields where the "
                                       f"header has {len(reader.fieldnames)}")])
                yield n, {k.strip().lower(): v for k, v in row.items() if k}
            return
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError([(n, "-", f"not JSON: {exc.msg} at character {exc.pos}")]) from None
            if not isinstance(obj, dict):
                raise InputError([(n, "-", "a line must be a JSON object")])
            yield n, {str(k).lower(): v for k, v in obj.items()}


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def to_record(n: int, row: dict[str, Any]) -> tuple[FeedbackRecord, list[str]]:
    """One row as a record (and its categories, if given); raises :class:`InputError` naming the column."""
    def fail(column: str, message: str) -> InputError:
        return InputError([(n, column, message)])

    if _blank(row.get("text")):
        raise fail("text", "empty (every row needs the customer's words)")
    raw_time = row.get("event_time")
    if _blank(raw_time):
        raise fail("event_time", "empty")
    try:
        when = datetime.fromisoformat(str(raw_time).strip().replace("Z", "+00:00"))
    except ValueError:
        raise fail("event_time", f"{str(raw_time)[:40]!r} is not an ISO 8601 time") from None
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when
    scores: dict[str, int | None] = {}
    for column, low, high in (("nps", 0, 10), ("csat", 1, 5)):
        value = row.get(column)
        if _blank(value):
            scores[column] = None
            continue
        try:
            scores[column] = int(float(str(value)))
        except ValueError:
            raise fail(column, f"{str(value)[:20]!r} is not a number") from None
        if not low <= (scores[column] or 0) <= high:
            raise fail(column, f"{scores[column]} is outside {low}-{high}")
    fields: dict[str, Any] = {"source": row.get("source") or "event",
                              "source_ref": str(row.get("id") or f"backtest-{n}"), "text": str(row["text"]),
                              "event_time": when, "channel": row.get("channel") or None,
                              "product": row.get("product") or None, "nps_score": scores["nps"],
                              "csat_score": scores["csat"]}
    try:
        record = FeedbackRecord.model_validate(fields)
    except ValidationError as exc:
        err = exc.errors()[0]
        column = {"source_ref": "id", "nps_score": "nps", "csat_score": "csat"}.get(str(err["loc"][0]),
                                                                                    str(err["loc"][0]))
        raise fail(column, err["msg"]) from None
    categories = [c.strip() for c in str(row.get("category") or "").split(";") if c.strip()]
    return record, categories


def load_file(path: Path, fmt: str | None) -> tuple[list[FeedbackRecord], dict[int, list[str]]]:
    """Every row as a record, or :class:`InputError` with the first problems (row, column, reason)."""
    records: list[FeedbackRecord] = []
    categories: dict[int, list[str]] = {}
    problems: list[tuple[int, str, str]] = []
    for n, row in read_rows(path, fmt):
        try:
            record, cats = to_record(n, row)
        except InputError as exc:
            problems += exc.problems
            if len(problems) >= MAX_ERRORS:
                break
            continue
        if cats:
            categories[len(records)] = cats
        records.append(record)
    if problems:
        raise InputError(problems[:MAX_ERRORS])
    return records, categories


def _example_rows(items: list[EnrichedFeedback]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The negative records, as ``feedback`` rows, so incidents can quote them."""
    rows: list[dict[str, Any]] = []
    cats: list[dict[str, Any]] = []
    for it in items:
        if it.sentiment.label != "negative":
            continue
        t = it.event_time
        rows.append({"feedback_id": it.feedback_id, "schema_version": 1, "source": it.source, "channel": it.channel,
                     "source_ref": it.source_ref, "text": it.text, "tags": [], "attributes": {},
                     "sentiment_polarity": it.sentiment.polarity, "sentiment_subjectivity": 0.0,
                     "sentiment_label": "negative", "sentiment_analyzer": "backtest", "product": it.product,
                     "primary_category": it.categories[0].name if it.categories else "other", "event_time": t,
                     "event_date": t.date(), "received_at": t, "processed_at": t, "written_at": t})
        cats += [{"feedback_id": it.feedback_id, "category": c.name, "confidence": c.confidence, "rank": k}
                 for k, c in enumerate(dict((c.name, c) for c in it.categories).values())]
    return rows, cats


def judge_windows(engine: Engine, windows: list[SignalWindow], settings: Any) -> Result:
    """Judge closed windows in time order, as the alert sink does, and collect the incidents."""
    judge = SignalJudge(config_from(settings), settings.signal_resolve_after)
    ordered = sorted(windows, key=lambda w: (w.window_end, w.window_seconds, w.scope_type, w.scope_value))
    result = Result(scopes=len({(w.scope_type, w.scope_value, w.window_seconds) for w in windows}))
    by_close: dict[datetime, list[SignalWindow]] = {}
    for w in ordered:  # judged as the running sink does: the windows of one close together, at that time
        by_close.setdefault(w.window_end, []).append(w)
    with engine.connect() as conn:
        for k, (closed, batch) in enumerate(by_close.items()):
            result.windows_judged += judge.judge(conn, batch, closed).windows
            if k % 500 == 499:  # a transaction now and then, not one per hour
                conn.commit()
        conn.commit()
    with engine.connect() as conn:
        result.incidents = list(reversed(incidents.list_incidents(conn, limit=100_000)))
    return result


def run_records(records: list[FeedbackRecord], categories: dict[int, list[str]], settings: Any) -> Result:
    """Enrich, window and judge ``records`` on a throw-away warehouse."""
    signals = offline_signals(settings)
    items: list[EnrichedFeedback] = []
    rejected = 0
    for k, item in enumerate(signals.enrich(records)):
        if isinstance(item, str):
            rejected += 1
            continue
        if k in categories:
            item = item.model_copy(update={"categories": [CategoryTag(name=c, confidence=1.0) for c in categories[k]]})
        items.append(item)
    windows = signals.windows(items)
    with tempfile.TemporaryDirectory(prefix="feedback-backtest-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'backtest.db'}")
        try:
            migrate(engine)
            rows, cats = _example_rows(items)
            with engine.begin() as conn:
                for i in range(0, len(rows), 5000):
                    conn.execute(insert(Feedback), rows[i:i + 5000])
                for i in range(0, len(cats), 5000):
                    conn.execute(insert(FeedbackCategory), cats[i:i + 5000])
            result = judge_windows(engine, windows, settings)
        finally:
            engine.dispose()
    result.records, result.rejected = len(items), rejected
    return result


def run_warehouse(engine: Engine, since: datetime, settings: Any) -> Result:
    """Replay the stored feedback since ``since`` (its stored labels: no enrichment again)."""
    signals = offline_signals(settings)
    f, fc = Feedback.__table__, FeedbackCategory.__table__
    observations = []
    with engine.connect() as conn:
        cats: dict[uuid.UUID, list[str]] = {}
        for fid, cat in conn.execute(select(fc.c.feedback_id, fc.c.category)
                                     .join(f, f.c.feedback_id == fc.c.feedback_id).where(f.c.event_time >= since)):
            cats.setdefault(fid, []).append(cat)
        for r in conn.execute(select(f).where(f.c.event_time >= since)):
            t = r.event_time if r.event_time.tzinfo else r.event_time.replace(tzinfo=UTC)
            score = r.sentiment_score if r.sentiment_score is not None else r.sentiment_polarity
            observations.append(signals.stored(str(r.feedback_id), t, r.sentiment_label, score, r.nps_class,
                                               r.csat_score, r.source, r.channel, cats.get(r.feedback_id, []),
                                               r.product))
    windows = signals.windows(observations)
    with tempfile.TemporaryDirectory(prefix="feedback-backtest-") as tmp:
        scratch = make_engine(f"sqlite:///{Path(tmp) / 'backtest.db'}")
        try:
            migrate(scratch)
            result = judge_windows(scratch, windows, settings)
        finally:
            scratch.dispose()
    result.records = len(observations)
    return result
