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
from sinks.report import stats
from sinks.report.charts import all_charts, colour
from sinks.report.data import collect
from sinks.report.model import ReportData, label, plural
from sinks.report.stats import Estimate

BREAKDOWN_ROWS = 12


def _num(value: float | None, fmt: str = "{:,.0f}", none: str = "\u2013") -> str:
    return none if value is None else fmt.format(value)


def _card(name: str, now: Estimate, before: Estimate, unit: str, higher_is_better: bool, tests: int,
          extra: str = "") -> dict[str, Any]:
    """A KPI card: the figure (or "not enough data"), its interval and n, and the change only when it is
    beyond noise."""
    if not now.enough:
        delta = {"text": "", "tone": "flat"}
    elif not before.enough:
        delta = {"text": f"no comparison (previous n = {before.n:,})", "tone": "flat"}
    elif not stats.changed(now, before, tests):
        delta = {"text": f"no change beyond noise (was {before.figure()})", "tone": "flat"}
    else:
        assert now.value is not None and before.value is not None
        diff = now.value - before.value
        good = (diff > 0) == higher_is_better
        delta = {"text": f"{'▲' if diff > 0 else '▼'} {abs(diff):.0f} pts (was {before.figure()})",
                 "tone": "good" if good else "bad"}
    sub = f"n = {now.n:,} {unit}" + (f" · {now.interval()}" if now.enough else f" (needs {stats.MIN_SAMPLE})")
    return {"name": name, "value": now.figure(), "small": not now.enough, "sub": sub + extra, "delta": delta}


def kpi_cards(data: ReportData) -> list[dict[str, Any]]:
    cur, prev = data.current, data.previous
    if prev.volume >= stats.MIN_SAMPLE:
        change = 100.0 * (cur.volume - prev.volume) / prev.volume
        arrow = "±" if abs(change) < 0.5 else "▲ " if change > 0 else "▼ "
        volume = {"text": f"{arrow}{abs(change):.0f}% (was {prev.volume:,})", "tone": "flat"}
    else:
        volume = {"text": f"no comparison (previous: {prev.volume:,})", "tone": "flat"}
    enough_csat = cur.csat_mean is not None and cur.csat_responses >= stats.MIN_SAMPLE
    mean = f" · mean {cur.csat_mean:.2f}" if enough_csat else ""
    return [
        {"name": "Responses", "value": _num(cur.volume), "small": False,
         "sub": plural(cur.customers, "customer") + " (with a reference)", "delta": volume},
        _card("NPS", cur.nps_estimate, prev.nps_estimate, "responses", True, 3),
        _card("CSAT", cur.csat_estimate, prev.csat_estimate, "ratings", True, 3, mean),
        _card("Negative share", cur.negative_estimate, prev.negative_estimate, "assessed", False, 3),
    ]


def breakdown_rows(data: ReportData) -> dict[str, list[dict[str, Any]]]:
    """Per dimension, one row per value: n, NPS, CSAT and negative share each with interval or "not enough"."""
    out: dict[str, list[dict[str, Any]]] = {}
    for dimension, items in data.breakdowns.items():
        out[dimension] = [{"value": value, "n": k.volume, "nps": k.nps_estimate, "csat": k.csat_estimate,
                           "negative": k.negative_estimate} for value, k in items[:BREAKDOWN_ROWS]]
    return out


def environment() -> Environment:
    env = Environment(loader=PackageLoader("sinks.report", "templates"), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["label"] = label
    env.filters["colour"] = colour
    env.filters["num"] = _num
    env.filters["when"] = lambda d: "\u2013" if d is None else d.strftime("%d %b %Y %H:%M")
    env.filters["day"] = lambda d: d.strftime("%d %b %Y")
    return env


def render_html(data: ReportData) -> str:
    charts = {c.id: c for c in all_charts(data)}
    last_day = data.until - timedelta(days=1)
    return environment().get_template("report.html").render(
        data=data, charts=charts, kpis=kpi_cards(data), last_day=last_day, breakdowns=breakdown_rows(data),
        min_sample=stats.MIN_SAMPLE,
        previous_last_day=data.since - timedelta(days=1))


REDACTORS_GROUP = "feedback.redactors"


def default_redactor() -> Any:
    """The PII redaction registered under the ``feedback.redactors`` entry point (the processors' one;
    sinks do not import processors), applied again to every example comment shown. Without one the
    report refuses: it never shows comments that were not redacted here."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=REDACTORS_GROUP):
        redactor = ep.load()()
        return lambda text: redactor.redact(text).text
    raise ConfigError(f"no PII redactor registered under the {REDACTORS_GROUP!r} entry point: reinstall the "
                      "package (pip install -e .)")


def build(engine: Engine, since: datetime, until: datetime | None = None, out: Path = Path("report.html"),
          pdf: bool = False, title: str = "Customer satisfaction review", top: int = 8,
          csv_path: Path | None = None) -> list[Path]:
    """Write the report for ``[since, until)`` (until: tomorrow, UTC) to ``out`` (and its PDF and the
    comments as CSV)."""
    until = until or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    if until <= since:
        raise ConfigError("--until must be after --since")
    redact = default_redactor()
    data = collect(engine, since, until, title=title, top=top, redact=redact)
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
    if csv_path is not None:
        from sinks.report.export import export_comments

        export_comments(engine, since, until, csv_path, redact)
        written.append(csv_path)
    return written
