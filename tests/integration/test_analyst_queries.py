"""Every SQL query of docs/analysts.md, run on a populated SQLite and PostgreSQL warehouse.

The queries are read from the document itself (each ```sql block that starts with ``-- query:``),
so the documentation and the tests cannot drift apart. Each answer is checked against the same
figure computed in Python from the records that were written.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.integration.warehouse_data import DIALECTS, Dataset, fresh_engine, populate, today

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[2] / "docs" / "analysts.md"
BLOCK = re.compile(r"```sql\n(-- query: ([a-z0-9_]+)\n.*?)```", re.S)


def documented_queries() -> dict[str, str]:
    return {m.group(2): m.group(1) for m in BLOCK.finditer(DOC.read_text())}


@pytest.fixture(scope="module", params=DIALECTS)
def populated(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
              ) -> Iterator[tuple[Engine, Dataset]]:
    with fresh_engine(request.param, tmp_path_factory.mktemp("aq")) as engine:
        yield engine, populate(engine)


# -- expected answers, computed in Python ------------------------------------------------------------
def _age(item: Any) -> int:
    return (today().date() - item.event_time.date()).days


def _month(item: Any) -> str:
    return item.event_time.strftime("%Y-%m")


def _nps(items: list[Any]) -> float:
    p = sum(i.nps_class == "promoter" for i in items)
    d = sum(i.nps_class == "detractor" for i in items)
    return 100.0 * (p - d) / len(items)


def _group(items: Any, key: Callable[[Any], Any]) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out


def _neg(items: list[Any]) -> int:
    return sum(i.sentiment.label == "negative" for i in items)


def _share(items: list[Any]) -> float | None:
    assessed = sum(i.sentiment.label != "not_assessed" for i in items)
    return _neg(items) / assessed if assessed else None


def expect_nps_by_month(ds: Dataset) -> list[tuple[Any, ...]]:
    groups = _group([i for i in ds.items if i.nps_score is not None], _month)
    return [(m, len(g), sum(i.nps_class == "promoter" for i in g), sum(i.nps_class == "detractor" for i in g), _nps(g))
            for m, g in sorted(groups.items())]


def expect_weekly_nps_last_8_weeks(ds: Dataset) -> list[tuple[Any, ...]]:
    def week(i: Any) -> str:
        d = i.event_time.date()
        return (d - timedelta(days=d.weekday())).isoformat()

    groups = _group([i for i in ds.items if i.nps_score is not None], week)
    return [(w, len(g), sum(i.nps_class == "promoter" for i in g), sum(i.nps_class == "detractor" for i in g), _nps(g))
            for w, g in sorted(groups.items(), reverse=True)[:8]]


def expect_detractor_drivers(ds: Dataset) -> list[tuple[Any, ...]]:
    per: dict[str, list[Any]] = defaultdict(list)
    for i in ds.items:
        if i.nps_score is not None:
            for c in i.categories:
                per[c.name].append(i)
    rows = [(c, sum(i.nps_class == "detractor" for i in g), len(g)) for c, g in per.items()]
    return [(c, d, n, d / n) for c, d, n in sorted(rows, key=lambda r: (-r[1], r[0]))]


def expect_csat_by_support_group(ds: Dataset) -> list[tuple[Any, ...]]:
    groups = _group([t for t in ds.tickets if t["csat_score"] is not None], lambda t: t["group_name"] or "(no group)")
    rows = []
    for g, ts in groups.items():
        sat = sum(t["csat_score"] >= 4 for t in ts)
        rows.append((g, len(ts), sat, 100.0 * sat / len(ts), sum(t["csat_score"] for t in ts) / len(ts)))
    return sorted(rows, key=lambda r: (r[3], r[0]))


def expect_complaints_this_week_vs_last(ds: Dataset) -> list[tuple[Any, ...]]:
    neg = [i for i in ds.items if i.sentiment.label == "negative" and _age(i) < 14]
    rows = []
    for c, g in _group(neg, lambda i: i.categories[0].name).items():
        this = sum(_age(i) < 7 for i in g)
        rows.append((c, this, len(g) - this, 2 * this - len(g)))
    return sorted(rows, key=lambda r: (-r[3], r[0]))


def expect_negative_share_by_source_30d(ds: Dataset) -> list[tuple[Any, ...]]:
    groups = _group([i for i in ds.items if _age(i) < 30], lambda i: i.source)
    rows = [(s, len(g), _neg(g), _share(g)) for s, g in groups.items()]
    return sorted(rows, key=lambda r: (-(r[3] or 0), r[0]))


def expect_csat_by_category(ds: Dataset) -> list[tuple[Any, ...]]:
    per: dict[str, list[int]] = defaultdict(list)
    for i in ds.items:
        if i.csat_score is not None:
            for c in i.categories:
                per[c.name].append(i.csat_score)
    rows = [(c, len(s), 100.0 * sum(x >= 4 for x in s) / len(s)) for c, s in per.items()]
    return sorted(rows, key=lambda r: (r[2], r[0]))


def expect_delivery_daily_14d(ds: Dataset) -> list[tuple[Any, ...]]:
    items = [i for i in ds.items if _age(i) < 14 and any(c.name == "delivery" for c in i.categories)]
    return [(d.isoformat(), len(g), _neg(g), _share(g))
            for d, g in sorted(_group(items, lambda i: i.event_time.date()).items())]


def expect_top_negative_aspects_3_months(ds: Dataset) -> list[tuple[Any, ...]]:
    months = {_month(i) for i in ds.items if _age(i) < 90}
    neg: dict[str, int] = defaultdict(int)
    mentions: dict[str, int] = defaultdict(int)
    for i in ds.items:
        if _month(i) in months:
            for a in i.aspects:
                mentions[a.category] += 1
                neg[a.category] += a.label == "negative"
    return sorted(((c, neg[c], mentions[c]) for c in mentions), key=lambda r: (-r[1], r[0]))[:5]


def _customers(ds: Dataset) -> dict[str, list[Any]]:
    return _group([i for i in ds.items if i.customer_ref], lambda i: i.customer_ref)


def expect_repeat_complainers(ds: Dataset) -> list[tuple[Any, ...]]:
    rows = [(ref, len(g), _neg(g), sum(i.nps_class == "detractor" for i in g), max(i.event_time for i in g))
            for ref, g in _customers(ds).items() if _neg(g) >= 3]
    return sorted(rows, key=lambda r: (-r[2], r[0]))[:20]


def expect_promoters_turned_detractors(ds: Dataset) -> list[tuple[Any, ...]]:
    out = []
    for ref, g in sorted(_customers(ds).items()):
        rated = sorted((i for i in g if i.nps_class), key=lambda i: i.event_time, reverse=True)
        if rated and rated[0].nps_class == "detractor" and any(i.nps_class == "promoter" for i in rated[1:]):
            out.append((ref, rated[0].event_time))
    return out


def expect_product_nps_90d(ds: Dataset) -> list[tuple[Any, ...]]:
    items = [i for i in ds.items if i.nps_score is not None and i.product and _age(i) < 90]
    rows = [(p, len(g), _nps(g)) for p, g in _group(items, lambda i: i.product).items() if len(g) >= 20]
    return sorted(rows, key=lambda r: (r[2], r[0]))


def expect_open_alerts_with_notes(ds: Dataset) -> list[tuple[Any, ...]]:
    rows = []
    for a in sorted(ds.alerts, key=lambda a: a["opened_at"]):
        if a["status"] in ("open", "acknowledged"):
            notes = [h for h in ds.history if h["alert_id"] == a["alert_id"]]
            rows.append((a["signal"], a["scope_type"], a["scope_value"], a["severity"], a["status"], a["opened_at"],
                         len(notes), max(h["at"] for h in notes)))
    return rows


EXPECTED: dict[str, Callable[[Dataset], list[tuple[Any, ...]]]] = {
    name.removeprefix("expect_"): fn for name, fn in globals().items() if name.startswith("expect_")
}


# -- comparing ---------------------------------------------------------------------------------------
def _norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.replace(tzinfo=None) if value.tzinfo is None else value.astimezone().replace(tzinfo=None)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _same(got: Any, want: Any) -> bool:
    if isinstance(want, datetime):
        got_dt = datetime.fromisoformat(got) if isinstance(got, str) else got
        want_naive = want.replace(tzinfo=None) if isinstance(got, str) else want
        if got_dt.tzinfo is None and want_naive.tzinfo is not None:
            want_naive = want_naive.replace(tzinfo=None)
        return abs(got_dt - want_naive) < timedelta(milliseconds=1)
    if isinstance(want, float) or isinstance(got, float):
        return got is not None and want is not None and math.isclose(float(got), float(want), rel_tol=1e-9,
                                                                      abs_tol=1e-9)
    return _norm(got) == want


def test_the_document_has_at_least_ten_queries_each_checked() -> None:
    queries = documented_queries()
    assert len(queries) >= 10
    assert set(queries) == set(EXPECTED), "every documented query needs an expected answer here (and back)"


@pytest.mark.parametrize("name", sorted(documented_queries()))
def test_documented_query(populated: tuple[Engine, Dataset], name: str) -> None:
    engine, ds = populated
    with engine.connect() as conn:
        got = [tuple(r) for r in conn.execute(text(documented_queries()[name].strip().rstrip(";")))]
    want = EXPECTED[name](ds)
    assert want, f"{name}: the data set should give this query something to answer"
    assert len(got) == len(want), f"{name}: {len(got)} rows, expected {len(want)}\n{got[:5]}\n{want[:5]}"
    for g, w in zip(got, want, strict=True):
        assert len(g) == len(w), f"{name}: columns {g} vs {w}"
        assert all(_same(a, b) for a, b in zip(g, w, strict=True)), f"{name}: {g} != {w}"
