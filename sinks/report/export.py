"""Export of the report's comment table to CSV (``feedback report --csv``).

Guarantees: one row per feedback item with ``since <= event_time < until``, oldest first, read in
batches (memory does not grow with the period); the text is redacted again, as in the report; a cell
that a spreadsheet would run as a formula (=, +, -, @ first) is prefixed with an apostrophe.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from sinks.warehouse.models import Feedback, FeedbackCategory

F = Feedback.__table__.c
C = FeedbackCategory.__table__.c
COLUMNS = ("feedback_id", "event_time", "source", "channel", "product", "nps_score", "nps_class", "csat_score",
           "sentiment_label", "primary_category", "categories", "customer_ref", "text")
BATCH = 2000


def _cell(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def export_comments(engine: Engine, since: datetime, until: datetime, path: Path,
                    redact: Callable[[str], str] | None) -> int:
    """Write the comments of ``[since, until)`` to ``path``; the number of rows written."""
    cols = [F[c] for c in COLUMNS if c not in ("categories",)]
    written = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with engine.connect() as conn, path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(COLUMNS)
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(
            select(*cols).where(F.event_time >= since, F.event_time < until).order_by(F.event_time, F.feedback_id))
        for rows in result.partitions(BATCH):
            ids = [r.feedback_id for r in rows]
            cats: dict[Any, list[str]] = defaultdict(list)
            with engine.connect() as side:
                for fid, cat in side.execute(select(C.feedback_id, C.category).where(C.feedback_id.in_(ids))
                                             .order_by(C.rank)):
                    cats[fid].append(cat)
            for r in rows:
                row = r._asdict()
                row["categories"] = ";".join(cats.get(r.feedback_id, []))
                row["text"] = redact(row["text"] or "") if redact else row["text"]
                when = row["event_time"]
                row["event_time"] = (when if when.tzinfo else when.replace(tzinfo=UTC)).isoformat() if when else ""
                out.writerow([_cell(row[c]) for c in COLUMNS])
                written += 1
    return written
