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
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, case, func, inspect, select

from sinks.warehouse.models import Feedback, FeedbackCategory

F = Feedback.__table__.c
C = FeedbackCategory.__table__.c


@dataclass
class Kpis:
    """Headline figures of one period."""

    volume: int = 0
    assessed: int = 0
    negative: int = 0
    nps_responses: int = 0
    promoters: int = 0
    detractors: int = 0
    csat_responses: int = 0
    csat_sum: float = 0.0
    csat_satisfied: int = 0
    customers: int = 0

    @property
    def nps(self) -> float | None:
        return 100.0 * (self.promoters - self.detractors) / self.nps_responses if self.nps_responses else None

    @property
    def csat_mean(self) -> float | None:
        return self.csat_sum / self.csat_responses if self.csat_responses else None

    @property
    def csat_pct(self) -> float | None:
        return 100.0 * self.csat_satisfied / self.csat_responses if self.csat_responses else None

    @property
    def negative_share(self) -> float | None:
        return 100.0 * self.negative / self.assessed if self.assessed else None

    def add(self, row: Any) -> None:
        self.volume += row.volume
        self.assessed += row.assessed or 0
        self.negative += row.negative or 0
        self.nps_responses += row.nps_responses or 0
        self.promoters += row.promoters or 0
        self.detractors += row.detractors or 0
        self.csat_responses += row.csat_responses or 0
        self.csat_sum += float(row.csat_sum or 0)
        self.csat_satisfied += row.csat_satisfied or 0


@dataclass
class Aspect:
    """One negative aspect (category) with its mentions and a few redacted example comments."""

    category: str
    negative: int
    mentions: int
    previous_negative: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return 100.0 * self.negative / self.mentions if self.mentions else 0.0


@dataclass
class ReportData:
    """Everything the template and the charts need."""

    title: str
    since: datetime
    until: datetime
    previous_since: datetime
    dialect: str
    bucket: str
    current: Kpis
    previous: Kpis
    buckets: list[date] = field(default_factory=list)
    trend: dict[date, Kpis] = field(default_factory=dict)
    category_volume: dict[str, dict[date, int]] = field(default_factory=dict)
    category_negative: dict[str, dict[date, tuple[int, int]]] = field(default_factory=dict)
    category_totals: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)
    aspects: list[Aspect] = field(default_factory=list)
    aspects_source: str = "categories"
    alerts: list[dict[str, Any]] = field(default_factory=list)
    alert_counts: dict[str, int] = field(default_factory=dict)
    alerts_available: bool = False
    changes: list[tuple[str, str]] = field(default_factory=list)
    generated_at: datetime | None = None


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


def choose_bucket(since: datetime, until: datetime) -> str:
    days = (until - since).days
    return "day" if days <= 45 else "week" if days <= 200 else "month"


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
    length = until - since
    previous_since = since - length
    bucket = choose_bucket(since, until)
    with engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        data = ReportData(title=title, since=since, until=until, previous_since=previous_since,
                          dialect=engine.dialect.name, bucket=bucket,
                          current=kpis(conn, since, until), previous=kpis(conn, previous_since, since),
                          buckets=all_buckets(since, until, bucket))
        in_period = and_(F.event_time >= since, F.event_time < until)
        for row in conn.execute(select(F.event_date, *_measures()).where(in_period).group_by(F.event_date)):
            data.trend.setdefault(bucket_of(_as_date(row.event_date), bucket), Kpis()).add(row)
        _categories(conn, data, since, until, previous_since)
        from sinks.report.sections import alerts, aspects

        aspects(conn, data, tables, top, redact)
        alerts(conn, data, tables)
    from sinks.report.sections import what_changed

    data.changes = what_changed(data)
    return data


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
