"""Render the satisfaction report: one self-contained HTML page (jinja2), optionally a PDF (WeasyPrint).

Guarantees: the HTML references nothing outside itself (styles inline, charts as data URIs), so it
can be mailed or archived as the record of a management review; the PDF is rendered from the same
HTML.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import Engine

from pipeline.errors import ConfigError
from sinks.report.charts import all_charts
from sinks.report.data import ReportData, collect
from sinks.report.sections import label


def _num(value: float | None, fmt: str = "{:,.0f}", none: str = "\u2013") -> str:
    return none if value is None else fmt.format(value)


def _delta(now: float | None, before: float | None, unit: str = "", higher_is_better: bool = True,
           digits: int = 0) -> dict[str, str]:
    """A KPI's change: text like ``+4 pts`` and a tone (good, bad, flat)."""
    if now is None or before is None:
        return {"text": "no comparison", "tone": "flat"}
    diff = now - before
    if abs(diff) < 0.5 * 10**-digits:
        return {"text": f"±0{unit}", "tone": "flat"}
    good = diff > 0 if higher_is_better else diff < 0
    arrow = "▲" if diff > 0 else "▼"
    return {"text": f"{arrow} {abs(diff):.{digits}f}{unit}", "tone": "good" if good else "bad"}


def kpi_cards(data: ReportData) -> list[dict[str, Any]]:
    cur, prev = data.current, data.previous
    if prev.volume:
        change = 100.0 * (cur.volume - prev.volume) / prev.volume
        arrow = "±" if abs(change) < 0.5 else "▲ " if change > 0 else "▼ "
        volume = {"text": f"{arrow}{abs(change):.0f}%", "tone": "flat"}
    else:
        volume = {"text": "no comparison", "tone": "flat"}
    return [
        {"name": "Responses", "value": _num(cur.volume), "sub": f"{cur.customers:,} customers", "delta": volume},
        {"name": "NPS", "value": _num(cur.nps, "{:+.0f}"), "sub": f"{cur.nps_responses:,} responses",
         "delta": _delta(cur.nps, prev.nps, " pts")},
        {"name": "CSAT", "value": _num(cur.csat_pct, "{:.0f}%"),
         "sub": f"mean {_num(cur.csat_mean, '{:.2f}')} · {cur.csat_responses:,} ratings",
         "delta": _delta(cur.csat_pct, prev.csat_pct, " pts")},
        {"name": "Negative share", "value": _num(cur.negative_share, "{:.0f}%"), "sub": f"{cur.assessed:,} assessed",
         "delta": _delta(cur.negative_share, prev.negative_share, " pts", higher_is_better=False)},
    ]


def environment() -> Environment:
    env = Environment(loader=PackageLoader("sinks.report", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["label"] = label
    env.filters["num"] = _num
    env.filters["when"] = lambda d: "\u2013" if d is None else d.strftime("%d %b %Y %H:%M")
    env.filters["day"] = lambda d: d.strftime("%d %b %Y")
    return env


def render_html(data: ReportData) -> str:
    charts = {c.id: c for c in all_charts(data)}
    last_day = data.until - timedelta(days=1)
    return environment().get_template("report.html").render(
        data=data, charts=charts, kpis=kpi_cards(data), last_day=last_day,
        previous_last_day=data.since - timedelta(days=1))


def default_redactor() -> Any:
    """The processors' PII redaction, applied again to every example comment shown."""
    try:
        from processors.redact import Redactor
    except ImportError:  # pragma: no cover - the processors package ships with the project
        return None
    redactor = Redactor()
    return lambda text: redactor.redact(text).text


def build(engine: Engine, since: datetime, until: datetime | None = None, out: Path = Path("report.html"),
          pdf: bool = False, title: str = "Customer satisfaction review", top: int = 8) -> list[Path]:
    """Write the report for ``[since, until)`` (until: tomorrow, UTC) to ``out`` (and its PDF)."""
    until = until or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if until <= since:
        raise ConfigError("--until must be after --since")
    data = collect(engine, since, until, title=title, top=top, redact=default_redactor())
    data.generated_at = datetime.now(UTC)
    html = render_html(data)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    written = [out]
    if pdf:
        from weasyprint import HTML

        pdf_path = out.with_suffix(".pdf")
        HTML(string=html, base_url=str(out.parent)).write_pdf(pdf_path)
        written.append(pdf_path)
    return written
