"""The report is honest about its numbers, on tiny and on large data in a real warehouse (SQLite and
PostgreSQL): sample sizes on every figure, "not enough data" instead of a number or a chart, changes
only beyond noise, open incidents first, the comment table exported to CSV."""

from __future__ import annotations

import csv
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, insert

from pipeline.schema import CategoryTag, EnrichedFeedback, Sentiment, nps_class
from sinks.report.charts import all_charts, colour
from sinks.report.data import collect
from sinks.report.render import default_redactor, kpi_cards
from sinks.warehouse.writer import WarehouseWriter
from tests.bench.warehouse_samples import enriched_sample, steady
from tests.integration.warehouse_data import DIALECTS, fresh_engine, run_cli, today

pytestmark = pytest.mark.integration

CLAIM = re.compile(r"\b(rose|fell|improved|dropped|up \d+|down \d+)\b")


def item(i: int, when: datetime, nps: int | None, label: str = "negative", category: str = "delivery",
         customer: str | None = "c_" + "1" * 32, run: str = "tiny") -> EnrichedFeedback:
    return EnrichedFeedback(
        source_ref=f"{run}-{i}", text=f"Comment {i} about {category}", event_time=when, nps_score=nps,
        nps_class=nps_class(nps), customer_ref=customer, product="kettle", channel="crm",
        sentiment=Sentiment(polarity=-0.5 if label == "negative" else 0.5, subjectivity=0.5, label=label),  # type: ignore[arg-type]
        categories=[CategoryTag(name=category, confidence=0.9)])


def period() -> tuple[datetime, datetime]:
    return today() - timedelta(days=27), today() + timedelta(days=1)


def claims(changes: list[tuple[str, str]]) -> list[str]:
    return [text for _, text in changes if CLAIM.search(text)]


@pytest.mark.parametrize("kind", DIALECTS)
def test_tiny_data_shows_no_figure_and_no_claim(kind: str, tmp_path: Path) -> None:
    since, until = period()
    with fresh_engine(kind, tmp_path) as engine:
        # 6 responses from one customer now (all promoters), 1 detractor in the previous period
        WarehouseWriter(engine).write([item(i, since + timedelta(days=i, hours=3), 10, "positive")
                                       for i in range(6)]
                                      + [item(99, since - timedelta(days=3), 0, customer="c_" + "2" * 32)])
        data = collect(engine, since, until)
        out = tmp_path / "tiny.html"
        result = run_cli(["report", "--since", since.date().isoformat(), "--out", str(out)],
                         env={"FEEDBACK_WAREHOUSE_URL": engine.url.render_as_string(hide_password=False)})
        assert result.exit_code == 0, result.output
    assert data.current.volume == 6 and data.current.nps == 100.0  # the raw figure, never shown as such
    cards = {c["name"]: c for c in kpi_cards(data)}
    assert cards["NPS"]["value"] == "not enough data" and "n = 6 responses" in cards["NPS"]["sub"]
    assert cards["CSAT"]["value"] == "not enough data" and "n = 0 ratings" in cards["CSAT"]["sub"]
    assert "no comparison" in cards["Responses"]["delta"]["text"]
    assert claims(data.changes) == [], data.changes
    text = " ".join(t for _, t in data.changes)
    assert "1 customer;" in text and "1 customers" not in text
    assert "%" not in text.split("NPS")[0], text  # no volume percentage against one response
    assert "held steady" not in text and "not enough data" in text
    charts = {c.id: c for c in all_charts(data)}
    assert not charts["chart-nps"].has_data and not charts["chart-csat"].has_data
    assert not charts["chart-negative"].has_data
    html = out.read_text()
    assert "+100" not in html and "not enough data" in html


def write_sample(engine: Engine, n: int, start: datetime, days: int, seed: int, run: str,
                 trend: object = steady) -> list[EnrichedFeedback]:
    items = enriched_sample(n, seed=seed, start=start, days=days, run=run, customers=400, trend=trend)  # type: ignore[arg-type]
    writer = WarehouseWriter(engine)
    for i in range(0, len(items), 1000):
        writer.write(items[i:i + 1000])
    return items


@pytest.mark.parametrize("kind", DIALECTS)
def test_large_steady_data_claims_nothing_and_exports_every_comment(kind: str, tmp_path: Path) -> None:
    since, until = period()
    with fresh_engine(kind, tmp_path) as engine:
        # the same draws in both periods (other ids and times): whatever is claimed is not in the data;
        # how often noise alone passes the test is measured in tests/unit/test_report_stats.py
        write_sample(engine, 3000, since - timedelta(days=28), 28, seed=4, run="before")
        items = write_sample(engine, 3000, since, 28, seed=4, run="now")
        data = collect(engine, since, until)
        out, table = tmp_path / "steady.html", tmp_path / "comments.csv"
        result = run_cli(["report", "--since", since.date().isoformat(), "--out", str(out), "--csv", str(table)],
                         env={"FEEDBACK_WAREHOUSE_URL": engine.url.render_as_string(hide_password=False)})
        assert result.exit_code == 0, result.output
    assert data.current.volume == 3000 and data.bucket == "day"  # about 80 scored responses a day
    assert claims(data.changes) == [], data.changes  # the same process in both periods: no change claimed
    assert sum("no change beyond noise" in t for _, t in data.changes) == 3
    for card in kpi_cards(data)[1:]:
        assert re.search(r"n = [\d,]+ .* · 95% CI", card["sub"]), card
    for dimension in ("product", "channel", "source"):
        assert sum(k.volume for _, k in data.breakdowns[dimension]) == 3000
    assert {v.group for v in data.voices} == {"promoters", "detractors"} and all(v.topics for v in data.voices)
    rows = list(csv.DictReader(table.open()))
    assert len(rows) == 3000 and {r["feedback_id"] for r in rows} == {str(i.feedback_id) for i in items}
    assert all(r["event_time"].endswith("+00:00") for r in rows[:50])
    html = out.read_text()
    for category in ("delivery", "billing"):  # stable colours: the same in every report
        assert colour(category) in html


@pytest.mark.parametrize("kind", ["sqlite"])
def test_real_change_is_reported_and_an_open_incident_comes_first(kind: str, tmp_path: Path) -> None:
    since, until = period()

    def better(_day: int, _category: str) -> tuple[float, float, float]:
        return (0.15, 0.25, 0.60)

    with fresh_engine(kind, tmp_path) as engine:
        write_sample(engine, 2000, since - timedelta(days=28), 28, seed=5, run="before")
        write_sample(engine, 2000, since, 28, seed=6, run="now", trend=better)
        from sinks.warehouse.alerts import AlertRow

        started = since + timedelta(days=20, hours=5)
        with engine.begin() as conn:
            conn.execute(insert(AlertRow), [{
                "alert_id": uuid.uuid4(), "signal": "negative_share", "scope_type": "product",
                "scope_value": "smart kettle", "status": "open", "severity": "critical",
                "first_window_start": started, "window_start": started + timedelta(hours=3),
                "window_end": started + timedelta(hours=4), "observed": 0.6, "expected": 0.3, "sample_size": 40,
                "z_score": 4.0, "opened_at": datetime.now(UTC), "updated_at": datetime.now(UTC),
                "in_control_streak": 0, "summary": "negative share of smart kettle left control"}])
        data = collect(engine, since, until, redact=default_redactor())
    assert data.changes[0] == ("bad", "1 alert open: product: smart kettle.")
    nps_line = next(t for tone, t in data.changes if t.startswith("NPS"))
    assert "NPS rose" in nps_line and "1 alert still open" in nps_line and "95% CI" in nps_line
    assert all(tone != "good" for tone, _ in data.changes)  # nothing is called good while it is open
    first = data.problems[0]
    assert first.open and first.started_at == started and first.examples  # event-time start, examples


@pytest.mark.parametrize("kind", DIALECTS)
def test_open_incident_with_its_driver_and_redacted_examples_leads(kind: str, tmp_path: Path) -> None:
    from sinks.warehouse.alerts import AlertRow, IncidentHistoryRow, IncidentRow

    since, until = period()
    started = since + timedelta(days=25, hours=2)
    now = datetime.now(UTC)
    incident, old = uuid.uuid4(), uuid.uuid4()
    with fresh_engine(kind, tmp_path) as engine:
        write_sample(engine, 400, since, 28, seed=7, run="now")
        common = {"kind": "signal", "severity": "critical", "signals": ["negative_share", "nps"],
                  "opened_at": started + timedelta(hours=2), "updated_at": now, "observed": 0.61,
                  "expected": 0.3, "sample_size": 120, "resolved_at": None, "resolved_by": None}
        with engine.begin() as conn:
            conn.execute(insert(IncidentRow), [
                common | {"incident_id": incident, "status": "open", "driver_scope_type": "product",
                          "driver_scope_value": "smart kettle", "explained_share": 0.64, "started_at": started,
                          "summary": "smart kettle: negative share 61% (expected 30%)",
                          "examples": ["Lid broke on day two, write to ann.lee@example.org"]},
                common | {"incident_id": old, "status": "resolved", "severity": "warning",
                          "driver_scope_type": "channel", "driver_scope_value": "crm", "explained_share": None,
                          "started_at": since + timedelta(days=2), "resolved_at": since + timedelta(days=4),
                          "resolved_by": "ops", "summary": "crm volume", "examples": []},
                common | {"incident_id": uuid.uuid4(), "kind": "emerging_theme", "status": "resolved",
                          "severity": "info", "driver_scope_type": "theme", "driver_scope_value": "lid hinge crack",
                          "explained_share": None, "started_at": since + timedelta(days=5),
                          "resolved_at": since + timedelta(days=9), "summary": "new theme: lid hinge crack",
                          "examples": ["The hinge of the lid cracked"]}])
            conn.execute(insert(IncidentHistoryRow), [{
                "history_id": uuid.uuid4(), "incident_id": incident, "at": now, "actor": "ops", "action": "note",
                "status": "open", "severity": "critical", "summary": "note", "note": "Supplier called",
                "notified": True}])
            conn.execute(insert(AlertRow), [{  # a member of the incident: shown through it, not twice
                "alert_id": uuid.uuid4(), "signal": "nps", "scope_type": "product", "scope_value": "smart kettle",
                "status": "open", "severity": "critical", "first_window_start": started, "window_start": started,
                "window_end": started + timedelta(hours=1), "observed": -40.0, "expected": -10.0,
                "sample_size": 50, "z_score": 4.0, "opened_at": now, "updated_at": now, "in_control_streak": 0,
                "summary": "nps of smart kettle left control", "incident_id": incident}])
        data = collect(engine, since, until, redact=default_redactor())
        from sinks.report.render import render_html

        html = render_html(data)
    assert data.problems_source == "incidents" and len(data.problems) == 3
    first = data.problems[0]
    assert first.open and first.driver == "product: smart kettle" and first.started_at == started
    assert first.examples == ["Lid broke on day two, write to [EMAIL]"] and first.notes[0]["note"] == "Supplier called"
    assert data.changes[0] == ("bad", "1 incident open: product: smart kettle.")
    assert data.alert_counts["open"] == 1 and data.alert_counts["resolved"] == 2
    theme = next(p for p in data.problems if p.kind == "emerging_theme")
    assert theme.examples == ["The hinge of the lid cracked"]  # its own texts, never other feedback
    themes = html[html.index('id="themes"'):html.index('id="changes"')]
    assert "lid hinge crack" in themes and "The hinge of the lid cracked" in themes
    assert "explains 64% of the shift" in html and "ann.lee@example.org" not in html
    assert html.index("product: smart kettle") < html.index('id="changes"')
