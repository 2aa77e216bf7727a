"""``feedback import FILE``: survey exports into ``feedback.raw`` through the shared publisher.

Guarantees: every row read is counted exactly once as published, rejected (with its reason; sent to
``feedback.dlq`` with stage ``import`` and the row as payload) or duplicate (the same feedback id
earlier in the file, or already in the warehouse); a chunk is acknowledged by the broker before the
next is read, so an interrupted import is simply run again: ids are deterministic (see
:mod:`connectors.backfill.mapping`) and the warehouse upserts, so nothing is ever counted twice.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from pipeline import metrics
from pipeline.errors import RecordError
from pipeline.logging import get_logger
from pipeline.schema import DeadLetter, FeedbackRecord

from .mapping import Mapping, row_to_record
from .readers import read_rows

MAX_KEPT_REJECTS = 10_000


class Sink(Protocol):
    """Where records and dead letters go: :class:`~pipeline.publisher.Publisher` (acks awaited)."""

    def publish(self, records: Sequence[FeedbackRecord], timeout: float = 30.0) -> None: ...

    def dead_letter(self, letters: Sequence[DeadLetter], timeout: float = 30.0) -> None: ...


@dataclass
class Rejected:
    """One rejected row: its number in the file and why."""

    row: int
    reason: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "reason": self.reason, "detail": self.detail}


@dataclass
class ImportSummary:
    """Counts of one import; ``as_dict`` is the ``--json`` output (exactly these four keys)."""

    read: int = 0
    published: int = 0
    rejected: int = 0
    duplicates: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    rejects: list[Rejected] = field(default_factory=list)
    without_date: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"read": self.read, "published": self.published, "rejected": self.rejected,
                "duplicates": self.duplicates}


class WarehouseIds:
    """Which feedback ids the warehouse already holds (None when it cannot be asked: nothing is skipped)."""

    def __init__(self, url: str | None) -> None:
        self.engine: Any = None
        if not url:
            return
        if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
            return
        from sqlalchemy import create_engine, inspect

        try:  # the feedback table is the contract here: no import of the warehouse sink (layering)
            engine = create_engine(url, hide_parameters=True)
            if "feedback" in inspect(engine).get_table_names():
                self.engine = engine
        except Exception as exc:  # the check is an optimisation; idempotent writes are the guarantee
            get_logger(__name__).warning("warehouse not consulted for duplicates", error=str(exc)[:200])

    def existing(self, ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
        if self.engine is None:
            return set()
        from sqlalchemy import Uuid, column, select, table

        feedback_id = column("feedback_id", Uuid)
        feedback = table("feedback", feedback_id)
        ids = list(ids)
        found: set[uuid.UUID] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                found.update(conn.execute(select(feedback_id).select_from(feedback).where(
                    feedback_id.in_(ids[i : i + 500]))).scalars())
        return found

    def erased(self, refs: Iterable[str | None]) -> set[str]:
        """The customer references of ``refs`` in the warehouse's erasure ledger (``feedback erase``);
        empty when the warehouse or its ledger cannot be asked (the warehouse sink checks it again)."""
        wanted = sorted({r for r in refs if r})
        if self.engine is None or not wanted:
            return set()
        from sqlalchemy import String, column, inspect, select, table

        if "erasure_ledger" not in inspect(self.engine).get_table_names():
            return set()
        erased_ref = column("erased_ref", String)
        ledger = table("erasure_ledger", erased_ref)
        found: set[str] = set()
        with self.engine.connect() as conn:
            for i in range(0, len(wanted), 500):
                found.update(conn.execute(select(erased_ref).select_from(ledger).where(
                    erased_ref.in_(wanted[i : i + 500]))).scalars())
        return found

    def close(self) -> None:
        if self.engine is not None:
            self.engine.dispose()


def run_import(rows: Iterable[tuple[int, dict[str, Any]]], mapping: Mapping, key: bytes, dataset: str,
               sink: Sink | None, known: WarehouseIds | None = None, chunk: int = 500,
               advance: Callable[[int], None] = lambda n: None, republish: bool = False) -> ImportSummary:
    """Map, validate and publish ``rows`` (``sink=None``: a dry run that publishes nothing)."""
    summary = ImportSummary()
    seen: set[uuid.UUID] = set()
    pending: list[FeedbackRecord] = []
    letters: list[DeadLetter] = []
    received = datetime.now(UTC)

    def flush() -> None:
        nonlocal pending, letters
        batch = pending
        if batch and known is not None and not republish:
            already = known.existing(r.feedback_id for r in batch)  # type: ignore[misc]
            batch = [r for r in batch if r.feedback_id not in already]
            summary.duplicates += len(pending) - len(batch)
            metrics.IMPORT_ROWS.labels("duplicate").inc(len(pending) - len(batch))
        if sink is not None:
            if batch:
                sink.publish(batch)
            if letters:
                sink.dead_letter(letters)
        summary.published += len(batch)
        metrics.IMPORT_ROWS.labels("published").inc(len(batch))
        advance(len(pending) + len(letters))
        pending, letters = [], []

    for n, row in rows:
        summary.read += 1
        try:
            record = row_to_record(row, mapping, key, dataset, received_at=received)
        except RecordError as exc:
            summary.rejected += 1
            summary.by_reason[exc.reason] += 1
            metrics.IMPORT_ROWS.labels("rejected").inc()
            if len(summary.rejects) < MAX_KEPT_REJECTS:
                summary.rejects.append(Rejected(n, exc.reason, exc.detail))
            raw = row.get("__raw__") if "__error__" in row else json.dumps(row, default=str, ensure_ascii=False)
            letters.append(DeadLetter.for_payload(
                raw, stage="import", reason=exc.reason, detail=f"{dataset} row {n}: {exc.detail}"[:4000],
                source=mapping.source))
            if len(letters) >= chunk:
                flush()
            continue
        if mapping.columns.get("date") is None or row.get(mapping.columns["date"]) in (None, ""):
            summary.without_date += 1
        if record.feedback_id in seen:
            summary.duplicates += 1
            metrics.IMPORT_ROWS.labels("duplicate").inc()
            advance(1)
            continue
        seen.add(record.feedback_id)  # type: ignore[arg-type]
        pending.append(record)
        if len(pending) >= chunk:
            flush()
    flush()
    get_logger(__name__).info("import done", dataset=dataset, **summary.as_dict(),
                              rejected_by_reason=dict(summary.by_reason), dry_run=sink is None)
    return summary


def import_file(path: Path, fmt: str, mapping: Mapping, key: bytes, sink: Sink | None,
                known: WarehouseIds | None = None, sheet: str | None = None, chunk: int = 500,
                advance: Callable[[int], None] = lambda n: None, republish: bool = False) -> ImportSummary:
    """Import one file: resolve the mapping against its headers, then :func:`run_import`."""
    rows = read_rows(path, fmt, sheet)
    first = next(rows, None)
    if first is None:
        return ImportSummary()
    headers = [h for h in first[1] if not h.startswith("__")]
    resolved = mapping.resolve(headers, strict=fmt != "jsonl")
    dataset = mapping.dataset or path.stem

    def all_rows() -> Iterable[tuple[int, dict[str, Any]]]:
        yield first
        yield from rows

    return run_import(all_rows(), resolved, key, dataset, sink, known, chunk, advance, republish)
