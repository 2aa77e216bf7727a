"""The ``feedback alerts`` commands: incidents and their alerts, corrective action, a channel test.

``feedback alerts list`` shows incidents (one problem each, with its driver and examples);
``--alerts`` shows the member alerts (signal x scope). ``ack`` / ``resolve`` / ``note`` / ``history``
take an incident id or an alert id (or an unambiguous prefix of one). ``test --channel NAME`` sends
a test message through one configured channel and says whether it was accepted.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from pipeline.config import SinkSettings, load
from pipeline.errors import ConfigError

alerts_app = typer.Typer(help="Incidents and their alerts: list, acknowledge, resolve (kept as history), test.",
                         no_args_is_help=True)


def _engine() -> Any:
    from sinks.warehouse.db import make_engine

    return make_engine(load(SinkSettings).existing_database_url())  # never creates an empty warehouse


def _print(item: Any) -> None:
    ident = getattr(item, "incident_id", None) or item.alert_id
    typer.echo(f"{ident}  {item.status}  {item.severity}  {item.summary}")


@alerts_app.command("list")
def alerts_list(
    status: Annotated[str | None, typer.Option(help="open | acknowledged | resolved | active")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array (incidents) or JSON lines (--alerts).")]
    = False,
    member_alerts: Annotated[bool, typer.Option("--alerts", help="List the member alerts instead.")] = False,
) -> None:
    """List incidents (or, with --alerts, alerts), newest first."""
    from rich.console import Console
    from rich.table import Table

    from sinks.alerts import admin

    engine = _engine()
    if member_alerts:
        alerts = admin.list_alerts(engine, status)
        if as_json:
            for a in alerts:
                typer.echo(a.to_alert().model_dump_json())
            return
        table = Table(show_lines=False)
        for col in ("id", "status", "severity", "signal", "scope", "incident", "opened (window)", "summary"):
            table.add_column(col, overflow="fold")
        for a in alerts:
            table.add_row(str(a.alert_id)[:8], a.status, a.severity, a.signal, f"{a.scope_type}={a.scope_value}",
                          str(a.incident_id or "")[:8], f"{a.first_window_start:%Y-%m-%d %H:%M}", a.summary)
        Console().print(table)
        return
    found = admin.list_incidents(engine, status)
    if as_json:
        typer.echo(json.dumps([i.model_dump(mode="json") for i in found]))
        return
    table = Table(show_lines=True)
    for col in ("id", "status", "severity", "driver", "explains", "signals", "started (event time)", "summary"):
        table.add_column(col, overflow="fold")
    for i in found:
        share = f"{i.explained_share:.0%}" if i.explained_share is not None else "-"
        examples = "".join(f"\n  “{e[:120]}”" for e in i.examples[:3])
        table.add_row(str(i.incident_id)[:8], i.status, i.severity, f"{i.driver_scope_type}={i.driver_scope_value}",
                      share, ", ".join(i.signals), f"{i.started_at:%Y-%m-%d %H:%M}", i.summary + examples)
    Console().print(table)


@alerts_app.command("ack")
def alerts_ack(
    ident: Annotated[str, typer.Argument(help="Incident or alert id (or a unique prefix).")],
    by: Annotated[str, typer.Option("--by", help="Who takes it on.")],
    note: Annotated[str | None, typer.Option("--note", help="What is being done.")] = None,
) -> None:
    """Acknowledge an incident (and its active alerts) or one alert; it still resolves by itself."""
    from sinks.alerts import admin

    _print(admin.act_any(_engine(), ident, "acknowledged", by, note))


@alerts_app.command("resolve")
def alerts_resolve(
    ident: Annotated[str, typer.Argument(help="Incident or alert id (or a unique prefix).")],
    note: Annotated[str, typer.Option("--note", help="What was done (corrective action).")],
    by: Annotated[str, typer.Option("--by", envvar="USER", help="Who resolved it.")] = "operator",
) -> None:
    """Resolve an incident (and its alerts) or one alert by hand, recording the corrective action."""
    from sinks.alerts import admin

    _print(admin.act_any(_engine(), ident, "resolved", by, note))


@alerts_app.command("note")
def alerts_note(
    ident: Annotated[str, typer.Argument(help="Incident or alert id (or a unique prefix).")],
    note: Annotated[str, typer.Option("--note")],
    by: Annotated[str, typer.Option("--by", envvar="USER")] = "operator",
) -> None:
    """Add a note to an incident's or an alert's history."""
    from sinks.alerts import admin

    _print(admin.act_any(_engine(), ident, "note", by, note))


@alerts_app.command("history")
def alerts_history(ident: Annotated[str, typer.Argument(help="Incident or alert id (or a unique prefix).")]) -> None:
    """Everything that happened to an incident or an alert: who, when, what."""
    from sinks.alerts import admin

    for h in admin.history_any(_engine(), ident):
        typer.echo(f"{h['at']:%Y-%m-%d %H:%M:%S}  {h['action']:<12} {h['actor']:<12} {h['status']:<12} "
                   f"{h['note'] or h['summary']}")


def test_incident() -> Any:
    """A clearly marked test incident (what ``alerts test`` sends)."""
    from pipeline.signal_schema import Incident

    now = datetime.now(UTC)
    return Incident(incident_id=uuid.uuid4(), status="open", severity="info", driver_scope_type="overall",
                    driver_scope_value="all", signals=["negative_share"], started_at=now, opened_at=now,
                    summary="Test message from feedback alerts test: this channel is configured and reachable.",
                    examples=["(an example comment would be shown here)"], event="test", event_id=uuid.uuid4(),
                    event_at=now, actor="feedback alerts test")


@alerts_app.command("test")
def alerts_test(
    channel: Annotated[str, typer.Option("--channel", help="kafka | slack | webhook | email")],
) -> None:
    """Send a test message through one configured channel; exit 1 if it was refused."""
    from pipeline.signal_config import AlertSettings
    from sinks.alerts.channels import DeliveryError, channels_from

    settings = load(AlertSettings)
    configured = {c.name: c for c in channels_from(settings, with_kafka=channel == "kafka")}
    if channel not in configured:
        raise ConfigError(f"channel {channel!r} is not configured; configured: {', '.join(configured) or 'none'} "
                          "(set FEEDBACK_ALERT_SLACK_WEBHOOK_URL, FEEDBACK_ALERT_WEBHOOK_URL or "
                          "FEEDBACK_ALERT_SMTP_HOST)")
    target = configured[channel]
    try:
        target.deliver_incident(test_incident())
    except DeliveryError as exc:
        typer.echo(f"{channel}: refused: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        for c in configured.values():
            c.close()
    typer.echo(f"{channel}: delivered")


def backtest_command(
    data: Annotated[Path | None, typer.Option("--data", help="CSV or JSON-lines file: text, event_time, ...")]
    = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv | jsonl (default: from the file name)")] = None,
    from_warehouse: Annotated[bool, typer.Option("--from-warehouse", help="Replay the stored feedback.")] = False,
    since: Annotated[str | None, typer.Option("--since", help="With --from-warehouse: YYYY-MM-DD.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: incidents, windows_judged, scopes.")]
    = False,
) -> None:
    """Replay feedback through the enrichment, windows and detector offline; print the incidents it would open."""
    from pipeline.signal_config import AlertSettings
    from sinks.alerts import backtest

    if fmt not in (None, "csv", "jsonl"):
        raise ConfigError("--format must be csv or jsonl")
    if (data is None) == (not from_warehouse):
        raise ConfigError("give either --data FILE or --from-warehouse --since DATE")
    settings = load(AlertSettings)
    from pipeline import logging as plog

    plog.configure("WARNING", settings.log_format, "backtest")  # the report is the output, not every alert event
    try:
        if data is not None:
            records, categories = backtest.load_file(data, fmt)
            result = backtest.run_records(records, categories, settings)
        else:
            if not since:
                raise ConfigError("--from-warehouse needs --since YYYY-MM-DD")
            try:
                start = datetime.fromisoformat(since).replace(tzinfo=UTC)
            except ValueError:
                raise ConfigError(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
            result = backtest.run_warehouse(_engine(), start, settings)
    except backtest.InputError as exc:
        typer.echo(f"{data}: cannot replay this file:\n{exc}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.to_json()))
        return
    typer.echo(f"{result.records:,} records ({result.rejected} refused by the enrichment), "
               f"{result.windows_judged:,} windows judged over {result.scopes} scopes: "
               f"{len(result.incidents)} incident(s)")
    for i in result.incidents:
        typer.echo(f"\n{i.started_at:%Y-%m-%d %H:%M}  {i.severity:<8} {i.driver_scope_type}={i.driver_scope_value}  "
                   f"[{', '.join(i.signals)}]  {len(i.alerts)} alert(s)\n  {i.summary}")
        for e in i.examples[:3]:
            typer.echo(f"    “{e[:160]}”")


def themes_command(
    since: Annotated[str, typer.Option("--since", help="YYYY-MM-DD: cluster the complaints since then.")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of themes.")] = False,
    category: Annotated[str, typer.Option("--category", help="Cluster inside this taxonomy category instead "
                                          "of the complaints no category covers (other).")] = "other",
) -> None:
    """Complaint themes the taxonomy has no category for (or new clusters inside one category with
    --category): label, size, growth, examples (offline clustering)."""
    from sinks.alerts import themes

    try:
        start = datetime.fromisoformat(since).replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    found = themes.themes_since(_engine(), start, category.strip())
    rising = {t.theme_id for t in themes.emerging(found)}
    if as_json:
        typer.echo(json.dumps([{**t.to_json(), "emerging": t.theme_id in rising} for t in found]))
        return
    if not found:
        where = "outside the taxonomy" if category == "other" else f"in category {category!r}"
        typer.echo(f"no themes: too few complaints {where} since {since}")
    for t in found:
        growth = f"{t.growth:.1f}x" if t.growth is not None else "new"
        flag = "  EMERGING" if t.theme_id in rising else ""
        typer.echo(f"{str(t.theme_id)[:8]}  {t.label}  size {t.size}, last week {t.recent} "
                   f"({t.recent_share:.0%} of those complaints), growth {growth}{flag}")
        for e in t.examples:
            typer.echo(f"    “{e[:160]}”")
