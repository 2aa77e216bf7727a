"""The ``feedback report`` command (registered in :mod:`pipeline.cli`)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline.errors import ConfigError, TransientError

console = Console(stderr=True)


def _day(value: str, option: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{option}: expected a date like 2026-01-01, got {value!r}") from None
    if parsed.time() != time() or parsed.tzinfo not in (None, UTC):
        raise ConfigError(f"{option}: give a date (periods are whole UTC days)")
    return parsed.replace(tzinfo=UTC)


def report_command(
    since: Annotated[str, typer.Option(help="First day of the period (UTC), e.g. 2026-01-01.")],
    until: Annotated[str | None, typer.Option(help="Day after the period (exclusive; default: tomorrow).")] = None,
    out: Annotated[Path, typer.Option(help="The HTML file to write.")] = Path("report.html"),
    pdf: Annotated[bool, typer.Option("--pdf", help="Also write a PDF next to it (WeasyPrint).")] = False,
    csv: Annotated[Path | None, typer.Option("--csv", help="Also export the period's comments (redacted) "
                                             "to this CSV file.")] = None,
) -> None:
    """Customer-satisfaction review: open incidents, NPS/CSAT with intervals, breakdowns, aspects, changes."""
    from pipeline.config import load
    from pipeline.logging import configure
    from pipeline.signal_config import ReportSettings
    from sinks.report.render import build
    from sinks.warehouse.db import make_engine

    settings = load(ReportSettings)
    configure(settings.log_level, settings.log_format, "report")
    start, end = _day(since, "--since"), _day(until, "--until") if until else None
    engine = make_engine(settings.existing_database_url())  # never creates an empty warehouse
    try:
        from sqlalchemy import inspect
        from sqlalchemy.exc import OperationalError

        try:
            tables = set(inspect(engine).get_table_names())
        except OperationalError as exc:
            raise TransientError(f"warehouse unavailable: {exc.orig}") from exc
        if not {"feedback", "feedback_categories"} <= tables:
            raise ConfigError(f"no feedback in the warehouse at {engine.url.render_as_string(hide_password=True)}: "
                              "check FEEDBACK_WAREHOUSE_URL (the sink creates the tables; or run `feedback migrate`)")
        paths = build(engine, start, end, out, pdf,
                      title=settings.report_title, top=settings.report_top_aspects, csv_path=csv)
    finally:
        engine.dispose()
    for path in paths:
        console.print(f"wrote {path}")
