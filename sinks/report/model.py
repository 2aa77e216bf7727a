"""What the report holds: plain data, no queries (``data`` and ``sections`` fill it; ``render`` and
``charts`` read it), so the modules that read the warehouse never import each other in a cycle."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sinks.report import stats
from sinks.report.stats import Estimate

ACRONYMS = {"nps": "NPS", "csat": "CSAT"}


def label(category: str | None) -> str:
    """A category or signal name as people read it: ``customer_support`` -> ``Customer support``."""
    if not category:
        return "(none)"
    return ACRONYMS.get(category) or category.replace("_", " ").capitalize()


def plural(n: int, word: str, many: str | None = None) -> str:
    """``1 customer``, ``2 customers``, ``1,204 responses``."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


@dataclass
class Kpis:
    """Counts of one period or slice; every figure derived from them carries its sample size and interval."""

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
    def nps_estimate(self) -> Estimate:
        return stats.nps(self.promoters, self.detractors, self.nps_responses)

    @property
    def csat_estimate(self) -> Estimate:
        return stats.wilson(self.csat_satisfied, self.csat_responses)

    @property
    def negative_estimate(self) -> Estimate:
        return stats.wilson(self.negative, self.assessed)

    @property
    def nps(self) -> float | None:
        return self.nps_estimate.value

    @property
    def csat_pct(self) -> float | None:
        return self.csat_estimate.value

    @property
    def csat_mean(self) -> float | None:
        return self.csat_sum / self.csat_responses if self.csat_responses else None

    @property
    def negative_share(self) -> float | None:
        return self.negative_estimate.value

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
    previous_mentions: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return 100.0 * self.negative / self.mentions if self.mentions else 0.0

    @property
    def estimate(self) -> Estimate:
        return stats.wilson(self.negative, self.mentions)

    @property
    def previous_estimate(self) -> Estimate:
        return stats.wilson(self.previous_negative, self.previous_mentions)


@dataclass
class Voice:
    """What one group (promoters or detractors) talks about: categories with counts and examples."""

    group: str
    responses: int
    topics: list[tuple[str, int]] = field(default_factory=list)
    examples: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class Problem:
    """An incident (or, without the incidents table, an alert) that is open or changed in the period:
    its driver, when it started in event time, its figures and example comments."""

    kind: str
    status: str
    severity: str
    driver: str
    signals: list[str]
    summary: str
    started_at: datetime | None
    opened_at: datetime | None
    resolved_at: datetime | None
    observed: float | None = None
    expected: float | None = None
    sample_size: int | None = None
    explained_share: float | None = None
    acknowledged_by: str | None = None
    resolved_by: str | None = None
    examples: list[str] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status != "resolved"


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
    breakdowns: dict[str, list[tuple[str, Kpis]]] = field(default_factory=dict)
    aspects: list[Aspect] = field(default_factory=list)
    aspects_source: str = "categories"
    voices: list[Voice] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    problems_source: str = "none"  # incidents | alerts | none
    alert_counts: dict[str, int] = field(default_factory=dict)
    changes: list[tuple[str, str]] = field(default_factory=list)
    generated_at: datetime | None = None

    @property
    def alerts_available(self) -> bool:
        return self.problems_source != "none"

    @property
    def open_problems(self) -> list[Problem]:
        return [p for p in self.problems if p.open]
