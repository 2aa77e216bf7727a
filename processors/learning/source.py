"""Training rows from the warehouse: scored feedback as weak labels, analyst corrections as strong
ones. Plain SQL on the ``feedback`` and ``feedback_labels`` tables (the schema is the contract).

Guarantees: only rows with a non-empty text are read; a score outside its scale is ignored (the
warehouse only holds validated scores); the latest correction of an item wins; ``since`` filters
by the feedback's event time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Engine, text

from processors.learning.catalog import has_table
from processors.learning.weak import Row, merge, weak_label

_SCORED = ("SELECT feedback_id, text, nps_score, csat_score, stars FROM feedback "
           "WHERE (nps_score IS NOT NULL OR csat_score IS NOT NULL OR stars IS NOT NULL){since} "
           "ORDER BY event_time, feedback_id")
_CORRECTED = ("SELECT l.feedback_id, f.text, l.value FROM feedback_labels l JOIN feedback f "
              "ON f.feedback_id = l.feedback_id WHERE l.kind = :kind{since} ORDER BY l.corrected_at, l.id")


def _since(since: date | None, alias: str = "") -> tuple[str, dict[str, Any]]:
    if since is None:
        return "", {}
    start = datetime(since.year, since.month, since.day)
    return f" AND {alias}event_time >= :since", {"since": start}


def corrections(engine: Engine, kind: str, since: date | None = None) -> list[Row]:
    """Analyst corrections of ``kind`` (sentiment|category), oldest first."""
    if not has_table(engine, "feedback_labels"):
        return []
    clause, params = _since(since, "f.")
    with engine.connect() as conn:
        rows = conn.execute(text(_CORRECTED.format(since=clause)), {"kind": kind, **params}).all()
    return [Row(str(t), str(v), "correction", str(fid)) for fid, t, v in rows if t and str(t).strip()]


def sentiment_rows(engine: Engine, since: date | None = None) -> list[Row]:
    """Weak labels of scored feedback (NPS, else CSAT, else stars), with corrections applied."""
    clause, params = _since(since)
    weak = []
    with engine.connect() as conn:
        for fid, body, nps, csat, stars in conn.execute(text(_SCORED.format(since=clause)), params):
            if not body or not str(body).strip():
                continue
            label = next((weak_label(v, s) for s, v in (("nps", nps), ("csat", csat), ("stars", stars))
                          if v is not None and weak_label(v, s) is not None), None)
            if label is not None:
                weak.append(Row(str(body), label, "weak", str(fid)))
    return merge(weak, corrections(engine, "sentiment", since))
