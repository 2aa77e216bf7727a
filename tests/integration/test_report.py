"""The satisfaction report on a populated warehouse (SQLite and PostgreSQL), checked as a person would:
headless Chromium opens the HTML, every chart is there and drawn, the sections say what happened."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.schema import Aspect, CategoryTag, EnrichedFeedback, Sentiment
from sinks.warehouse.writer import WarehouseWriter
from tests.integration.warehouse_data import DIALECTS, fresh_engine, populate, run_cli, today

pytestmark = pytest.mark.integration

CHARTS = ["chart-nps", "chart-csat", "chart-volume", "chart-negative", "chart-aspects"]


@pytest.mark.parametrize("kind", DIALECTS)
def test_report_renders_every_chart(kind: str, tmp_path: Path, browser: Any) -> None:
    with fresh_engine(kind, tmp_path) as engine:
        populate(engine, n=1500, days=56)
        said = "Courier lost it, call me on +44 20 7946 0958 or mail jo.bloggs@example.org"
        leaky = EnrichedFeedback(  # text the processors would have redacted: the report redacts again
            source_ref="leaky", text=said,
            aspects=[Aspect(sentence=0, text=said, category="delivery", confidence=0.9, label="negative")],
            event_time=today() + timedelta(hours=23, minutes=59), nps_score=0, nps_class="detractor",
            sentiment=Sentiment(polarity=-0.9, subjectivity=0.5, label="negative"),
            categories=[CategoryTag(name="delivery", confidence=0.9)])
        WarehouseWriter(engine).write([leaky])
        out = tmp_path / "report.html"
        since = (today() - timedelta(days=27)).date().isoformat()
        until = (today() + timedelta(days=1)).date().isoformat()
        pdf = ["--pdf"] if kind == "sqlite" else []  # the PDF comes from the same HTML: once is enough
        result = run_cli(["report", "--since", since, "--until", until, "--out", str(out), *pdf],
                                    env={"FEEDBACK_WAREHOUSE_URL": engine.url.render_as_string(hide_password=False)})
        assert result.exit_code == 0, result.output
    html = out.read_text()
    assert "jo.bloggs@example.org" not in html and "7946 0958" not in html and "[EMAIL]" in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "<link" not in html  # self-contained
    if pdf:
        assert out.with_suffix(".pdf").read_bytes().startswith(b"%PDF")

    page = browser.new_page(viewport={"width": 1100, "height": 1000})
    page.goto(out.as_uri())
    page.wait_for_load_state("load")
    for chart in CHARTS:
        img = page.locator(f"img#{chart}")
        assert img.is_visible(), chart
        width, height = page.evaluate(f"() => {{ const i = document.getElementById('{chart}');"
                                      " return [i.naturalWidth, i.getBoundingClientRect().height]; }")
        assert width > 300 and height > 100, f"{chart} is not drawn ({width}x{height})"
    kpis = page.inner_text("#kpis")
    assert "NPS" in kpis and "CSAT" in kpis and "NEGATIVE SHARE" in kpis.upper()
    changes = page.inner_text("#changes")
    assert "Delivery: negative share up" in changes, changes  # the data set's delivery trouble
    assert "alerts opened" in changes or "alert opened" in changes
    aspects = page.inner_text("#aspects")
    assert aspects.splitlines()[1].startswith("Delivery")  # the worst aspect comes first
    opened = page.inner_text("#open-problems")  # open alerts come before everything else, with examples
    assert page.evaluate("() => document.getElementById('open-problems').getBoundingClientRect().top"
                         " < document.getElementById('changes').getBoundingClientRect().top")
    assert "category: delivery" in opened and "event time" in opened and "“" in opened
    for dimension in ("product", "channel", "source"):
        assert "95% CI" in page.inner_text(f"#by-{dimension}") and "n = " in page.inner_text(f"#by-{dimension}")
    voices = page.inner_text("#voices")
    assert "Promoters" in voices and "Detractors" in voices and "Delivery" in voices
    alerts = page.inner_text("#alerts")
    assert "Courier partner contacted" in alerts and "Switched depots" in alerts and "resolved" in alerts
    page.screenshot(path=str(tmp_path / f"report-{kind}.png"), full_page=True)
    page.close()
