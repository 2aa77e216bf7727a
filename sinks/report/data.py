"""What the satisfaction report shows, read from the warehouse (SQLite or PostgreSQL) for one period.

Aggregation happens in SQL per day (``event_date``) and, where it matters, per category; days are
grouped into the chart buckets (day, ISO week or month, by the length of the period) in Python, so
the same code runs on both dialects. The previous period has the same length and ends where this
one starts. Example comments are redacted again before they are shown.

Guarantees: every figure is computed over ``since <= event_time < until``; shares leave out
``not_assessed`` texts; an optional table (aspects, alerts) that is not there gives an empty section,
never an error.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import Engine, and_, case, func, inspect, select

from sinks.report.model import Kpis, ReportData
from sinks.report.stats import MIN_SAMPLE
from sinks.warehouse.models import Feedback, FeedbackCategory

F = Feedback.__table__.c
C = FeedbackCategory.__table__.c
BUCKETS = ("day", "week", "month")
#: The breakdowns shown, each a column of the feedback table.
DIMENSIONS = ("product", "channel", "source")


def _measures() -> list[Any]:
    def count_if(cond: Any) -> Any:
        return func.sum(case((cond, 1), else_=0))

    return [
        func.count().label("volume"),
        count_if(F.sentiment_label != "not_assessed").label("assessed"),
        count_if(F.sentiment_label == "negative").label("negative"),
        func.count(F.nps_score).label("nps_responses"),
        count_if(F.nps_class == "promoter").label("promoters"),
        count_if(F.nps_class == "detractor").label("detractors"),
        func.count(F.csat_score).label("csat_responses"),
        func.sum(F.csat_score).label("csat_sum"),
        count_if(F.csat_score >= 4).label("csat_satisfied"),
    ]


def choose_bucket(since: datetime, until: datetime, daily: dict[date, int] | None = None) -> str:
    """Day, ISO week or month: by the period's length, then coarser while the typical bucket holds
    fewer than MIN_SAMPLE NPS/CSAT responses (so a trend point is not noise)."""
    days = (until - since).days
    bucket = "day" if days <= 45 else "week" if days <= 200 else "month"
    if not daily:
        return bucket
    for candidate in BUCKETS[BUCKETS.index(bucket):]:
        bucket = candidate
        per: dict[date, int] = defaultdict(int)
        for day, n in daily.items():
            per[bucket_of(day, candidate)] += n
        if median(per.get(b, 0) for b in all_buckets(since, until, candidate)) >= MIN_SAMPLE:
            break
    return bucket


def bucket_of(day: date, bucket: str) -> date:
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def all_buckets(since: datetime, until: datetime, bucket: str) -> list[date]:
    out: list[date] = []
    day = since.date()
    last = (until - timedelta(microseconds=1)).date()
    while day <= last:
        b = bucket_of(day, bucket)
        if not out or out[-1] != b:
            out.append(b)
        day += timedelta(days=1)
    return out


def kpis(conn: Any, since: datetime, until: datetime) -> Kpis:
    in_period = and_(F.event_time >= since, F.event_time < until)
    result = Kpis()
    row = conn.execute(select(*_measures()).where(in_period)).one()
    if row.volume:
        result.add(row)
    result.customers = conn.execute(select(func.count(func.distinct(F.customer_ref))).where(in_period)).scalar_one()
    return result


def collect(engine: Engine, since: datetime, until: datetime, title: str = "Customer satisfaction review",
            top: int = 8, redact: Any = None) -> ReportData:
    """Read the report's figures for ``[since, until)`` and the period before it."""
    from sinks.report import sections
    from sinks.report.changes import what_changed

    length = until - since
    previous_since = since - length
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        in_period = and_(F.event_time >= since, F.event_time < until)
        days = {_as_date(r.event_date): r for r in
                conn.execute(select(F.event_date, *_measures()).where(in_period).group_by(F.event_date))}
        daily = {d: max(r.nps_responses or 0, r.csat_responses or 0) for d, r in days.items()}
        bucket = choose_bucket(since, until, daily)
        data = ReportData(title=title, since=since, until=until, previous_since=previous_since,
                          dialect=engine.dialect.name, bucket=bucket,
                          current=kpis(conn, since, until), previous=kpis(conn, previous_since, since),
                          buckets=all_buckets(since, until, bucket))
        for day, row in days.items():
            data.trend.setdefault(bucket_of(day, bucket), Kpis()).add(row)
        _categories(conn, data, since, until, previous_since)
        for dimension in DIMENSIONS:
            data.breakdowns[dimension] = breakdown(conn, dimension, since, until)
        sections.aspects(conn, data, tables, top, redact)
        sections.voices(conn, data, redact)
        sections.problems(conn, data, tables, redact)
    data.changes = what_changed(data)
    return data


def breakdown(conn: Any, dimension: str, since: datetime, until: datetime) -> list[tuple[str, Kpis]]:
    """The period's counts per value of ``dimension`` (product, channel, source), largest first."""
    column = F[dimension]
    rows = conn.execute(select(column.label("value"), *_measures())
                        .where(F.event_time >= since, F.event_time < until).group_by(column))
    out = []
    for row in rows:
        k = Kpis()
        k.add(row)
        out.append((row.value or "(none)", k))
    return sorted(out, key=lambda item: (-item[1].volume, item[0]))


def _categories(conn: Any, data: ReportData, since: datetime, until: datetime, previous_since: datetime) -> None:
    neg = func.sum(case((F.sentiment_label == "negative", 1), else_=0))
    assessed = func.sum(case((F.sentiment_label != "not_assessed", 1), else_=0))
    stmt = (select(F.event_date, C.category, func.count().label("volume"), neg.label("negative"),
                   assessed.label("assessed"))
            .select_from(Feedback.__table__.join(FeedbackCategory.__table__, C.feedback_id == F.feedback_id))
            .where(F.event_time >= previous_since, F.event_time < until)
            .group_by(F.event_date, C.category))
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in conn.execute(stmt):
        day = _as_date(row.event_date)
        current = day >= since.date()  # periods are whole UTC days (event_date is the UTC date)
        t = totals[row.category]
        if current:
            b = bucket_of(day, data.bucket)
            vol = data.category_volume.setdefault(row.category, {})
            vol[b] = vol.get(b, 0) + row.volume
            n, a = data.category_negative.setdefault(row.category, {}).get(b, (0, 0))
            data.category_negative[row.category][b] = (n + (row.negative or 0), a + (row.assessed or 0))
            t[0] += row.negative or 0
            t[1] += row.assessed or 0
        else:
            t[2] += row.negative or 0
            t[3] += row.assessed or 0
    data.category_totals = {k: (v[0], v[1], v[2], v[3]) for k, v in totals.items()}
