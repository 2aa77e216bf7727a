"""What an incident shows: each scope's negatives in excess of its baseline over a period (what the
driver is chosen from, :mod:`sinks.alerts.incidents`), the example comments, and the incident in words."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Table, and_, exists, func, select
from sqlalchemy.exc import DBAPIError

from sinks.alerts.lifecycle import scope_phrase
from sinks.warehouse.alerts import SignalWindowRow
from sinks.warehouse.models import Feedback, FeedbackCategory

EXAMPLES = 5
W: Table = SignalWindowRow.__table__  # type: ignore[assignment]
F: Table = Feedback.__table__  # type: ignore[assignment]
FC: Table = FeedbackCategory.__table__  # type: ignore[assignment]

Scope = tuple[str, str]


@dataclass
class Excess:
    """A scope's responses, negatives and baseline-expected negatives over a period."""

    responses: int = 0
    negatives: int = 0
    expected: float = 0.0

    @property
    def excess(self) -> float:
        return self.negatives - self.expected

    @property
    def share(self) -> float | None:
        return self.negatives / self.responses if self.responses else None

    @property
    def baseline(self) -> float | None:
        return self.expected / self.responses if self.responses else None


def excess_by_scope(conn: Connection, start: datetime, end: datetime) -> dict[Scope, Excess]:
    """Every scope's :class:`Excess` over its windows that lie within ``[start, end)``.

    A scope has one window size (hourly, or daily for the slow scopes), so scopes of either size
    compare over the same span: a daily product alert and an hourly category incident meet here.
    """
    verdict = W.c.detection["negative_share"]
    p0 = func.coalesce(verdict["p0"].as_float(), verdict["expected"].as_float())
    n = W.c.negative + W.c.neutral + W.c.positive
    rows = conn.execute(  # summed in the database: a month of windows of every scope is one small answer
        select(W.c.scope_type, W.c.scope_value, func.sum(n).label("n"), func.sum(W.c.negative).label("x"),
               func.sum(n * p0).label("e"))
        .where(W.c.window_end <= end, W.c.window_start >= start, W.c.window_start < end, p0.is_not(None), n > 0)
        .group_by(W.c.scope_type, W.c.scope_value))
    return {(r.scope_type, r.scope_value): Excess(int(r.n), int(r.x), float(r.e)) for r in rows}


def examples(conn: Connection, scope: Scope, start: datetime, end: datetime, limit: int = EXAMPLES) -> list[str]:
    """Up to ``limit`` distinct redacted negative comments of ``scope`` from ``[start, end)``."""
    stmt = select(F.c.text).where(F.c.event_time >= start, F.c.event_time < end, F.c.sentiment_label == "negative",
                                  F.c.text != "")
    kind, value = scope
    if kind == "source":
        stmt = stmt.where(F.c.source == value)
    elif kind == "channel":
        stmt = stmt.where(F.c.channel == value)
    elif kind == "product":
        stmt = stmt.where(F.c.product == value)
    elif kind == "category":
        stmt = stmt.where(exists().where(and_(FC.c.feedback_id == F.c.feedback_id, FC.c.category == value)))
    elif kind != "overall":
        return []
    try:
        with conn.begin_nested():  # the alert sink may run without the warehouse sink's tables
            texts = list(conn.execute(stmt.order_by(F.c.event_time).limit(500)).scalars())
    except DBAPIError:
        return []
    counts: dict[str, int] = {}
    for t in texts:
        counts[t.strip()[:300]] = counts.get(t.strip()[:300], 0) + 1
    return [t for t, _ in sorted(counts.items(), key=lambda kv: -kv[1])][:limit]  # the most said first


def describe(driver: Scope, figures: Excess, share: float | None, since: datetime) -> str:
    """The incident in words, with its sample size: what operators read first."""
    where = "overall" if driver[0] == "overall" else f"of {driver[1]} feedback" if driver[0] == "category" \
        else scope_phrase(*driver)
    if figures.responses and figures.share is not None and figures.baseline is not None:
        text = (f"Negative share {where} {figures.share:.0%} vs {figures.baseline:.0%} usual, "
                f"{figures.responses:,} responses since {since:%a %d %b %H:%M} UTC")
    else:
        text = f"Signals out of control {where} since {since:%a %d %b %H:%M} UTC"
    if share is not None and driver[0] != "overall":
        text += f"; {driver[1]} explains {share:.0%} of the rise in negative share overall"
    return text + "."
