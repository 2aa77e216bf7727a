"""The ``feedback`` command line (Typer)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.console import Console

from pipeline import logging as plog
from pipeline.config import (
    CommonSettings,
    HttpSettings,
    ProcessorSettings,
    SinkSettings,
    UpSettings,
    ZendeskSettings,
    load,
)
from pipeline.errors import ConfigError, TransientError

app = typer.Typer(help="Customer-feedback pipeline: hear every customer.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
sink_app = typer.Typer(help="Run a sink.", no_args_is_help=True)
app.add_typer(sink_app, name="sink")
connector_app = typer.Typer(help="Run a connector.", no_args_is_help=True)
app.add_typer(connector_app, name="connector")
console = Console(stderr=True)


def _logging(settings: CommonSettings, component: str) -> None:
    plog.configure(settings.log_level, settings.log_format, component)


@app.command()
def up(
    no_broker: Annotated[
        bool, typer.Option("--no-broker", help="Use FEEDBACK_KAFKA_BOOTSTRAP; start no broker.")
    ] = False,
) -> None:
    """Run the whole pipeline (broker, HTTP service, processor, warehouse sink) until Ctrl-C."""
    from pipeline.supervisor import Supervisor

    settings = load(UpSettings)
    if no_broker and settings.uses_embedded_broker:
        raise ConfigError("--no-broker needs FEEDBACK_KAFKA_BOOTSTRAP")
    _logging(settings, "supervisor")
    sup = Supervisor(settings, with_broker=settings.uses_embedded_broker and not no_broker)
    base = f"http://{settings.http_host}:{settings.http_port}"
    console.print(f"[bold]Feedback pipeline[/bold]  (Ctrl-C to stop)\n"
                  f"  feedback form  {base}/forms/default\n"
                  f"  events API     {base}/v1/events   (docs: {base}/docs)\n"
                  f"  metrics        {base}/metrics  http://127.0.0.1:{load(ProcessorSettings).metrics_port}/metrics"
                  f"  http://127.0.0.1:{load(SinkSettings).metrics_port}/metrics\n"
                  f"  broker         {settings.bootstrap}{' (embedded, in memory)' if sup.with_broker else ''}\n"
                  f"  warehouse      {settings.database_url}")
    raise typer.Exit(sup.run())


@app.command()
def broker(
    port: Annotated[int | None, typer.Option(help="Port (default FEEDBACK_EMBEDDED_BROKER_PORT).")] = None,
) -> None:
    """Run the embedded Kafka-protocol broker (Tansu, memory storage) in the foreground."""
    import os

    from pipeline import broker as b

    settings = load(CommonSettings)
    port = port or settings.embedded_broker_port
    argv = b.broker_command(port)
    console.print(f"broker listening on 127.0.0.1:{port} (memory only: a restart loses every topic)")
    os.execv(argv[0], argv)


@app.command("serve-http")
def serve_http() -> None:
    """Run the HTTP ingestion service (forms, /v1/events, /metrics)."""
    from connectors.http.server import run

    settings = load(HttpSettings)
    _logging(settings, "http")
    run(settings)


@app.command()
def process() -> None:
    """Run the faust stream processor (feedback.raw -> feedback.enriched)."""
    from processors.app import run_worker

    settings = load(ProcessorSettings)
    _logging(settings, "processor")
    run_worker(settings)


@sink_app.command("warehouse")
def sink_warehouse() -> None:
    """Run the warehouse sink (feedback.enriched -> SQL)."""
    from sinks.warehouse.consumer import run

    settings = load(SinkSettings)
    _logging(settings, "sink")
    run(settings)


@sink_app.command("followups")
def sink_followups() -> None:
    """Run the follow-up sink (feedback.enriched -> contacts, tickets for unhappy customers who consented)."""
    from sinks.followups.plugin import run

    run()


# -- degrading-signal alerts (issue 6): the alert sink and corrective action ----------------------
@sink_app.command("alerts")
def sink_alerts() -> None:
    """Run the alert sink (feedback.signals -> detector -> warehouse, feedback.alerts, webhooks, e-mail)."""
    from pipeline.config import AlertSettings
    from sinks.alerts.consumer import run

    settings = load(AlertSettings)
    _logging(settings, "alerts")
    run(settings)


from sinks.alerts.commands import alerts_app, backtest_command, themes_command  # noqa: E402

app.add_typer(alerts_app, name="alerts")
app.command("backtest")(backtest_command)
app.command("themes")(themes_command)


@connector_app.command("zendesk")
def connector_zendesk(
    once: Annotated[bool, typer.Option("--once", help="Stop at the end of the export stream.")] = False,
) -> None:
    """Poll Zendesk's incremental ticket export (tickets, public comments, CSAT) into feedback.raw."""
    from connectors.tickets.poller import run

    settings = load(ZendeskSettings)
    _logging(settings, "zendesk")
    run(settings, once=once)


@connector_app.command("email")
def connector_email() -> None:
    """Read IMAP mailbox folders (FEEDBACK_IMAP_*) into feedback.raw; IDLE or poll until Ctrl-C."""
    from connectors.email.imap import run
    from connectors.email.settings import EmailSettings

    settings = load(EmailSettings)
    _logging(settings, "email")
    run(settings)


@app.command("import-mbox")
def import_mbox(
    path: Annotated[Path, typer.Argument(help="An mbox file, an .eml file or a folder of .eml files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Backfill an e-mail archive through the e-mail connector's parsing and publishing path."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from connectors.email.mbox import count_messages, import_archive, make_ingestor
    from connectors.email.settings import EmailSettings

    settings = load(EmailSettings)
    _logging(settings, "import-mbox")
    if not path.exists():
        raise ConfigError(f"no such file or folder: {path}")
    ingestor, publisher = make_ingestor(settings)
    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    try:
        with Progress(*columns, console=console) as progress:
            task = progress.add_task(f"importing {path.name}", total=count_messages(path))
            summary = import_archive(path, settings, ingestor, advance=lambda n: progress.advance(task, n))
    finally:
        publisher.close()  # type: ignore[attr-defined]
    result = summary.as_dict()
    if as_json:
        typer.echo(json.dumps(result))
        return
    by_reason = ", ".join(f"{k} {v}" for k, v in result["skipped_by_reason"].items())
    console.print(f"read {result['read']}: published {result['published']}, skipped {result['skipped']}"
                  f"{f' ({by_reason})' if by_reason else ''}, dead-lettered {result['dead_lettered']}, "
                  f"already known {result['duplicates']}")


@app.command()
def migrate() -> None:
    """Bring the warehouse schema to the latest revision."""
    from sinks.warehouse.db import current_revisions, make_engine
    from sinks.warehouse.db import migrate as do_migrate

    settings = load(SinkSettings)
    engine = make_engine(settings.database_url)
    do_migrate(engine)
    console.print(f"warehouse at revision {', '.join(current_revisions(engine))}")


@app.command()
def schema(out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files.")] = Path("schemas")) -> None:
    """Write the JSON Schema files that outside producers validate against."""
    from pipeline.schema import write_json_schemas

    for path in write_json_schemas(out):
        typer.echo(path)


@app.command()
def send(
    text: Annotated[str, typer.Argument(help="The feedback text.")],
    nps: Annotated[int | None, typer.Option(min=0, max=10, help="NPS score 0-10.")] = None,
    csat: Annotated[int | None, typer.Option(min=1, max=5, help="CSAT score 1-5.")] = None,
    source: Annotated[str, typer.Option(help="email|webform|ticket|event")] = "event",
    product: Annotated[str | None, typer.Option()] = None,
    ref: Annotated[str | None, typer.Option(help="source_ref (default: a new unique id).")] = None,
    url: Annotated[str | None, typer.Option(help="Service URL (default from FEEDBACK_HTTP_HOST/PORT).")] = None,
    token: Annotated[str | None, typer.Option(envvar="FEEDBACK_API_TOKEN", help="Bearer token.")] = None,
) -> None:
    """Post one feedback record through the HTTP API and print its feedback id."""
    settings = load(HttpSettings)
    base = url or f"http://{settings.http_host}:{settings.http_port}"
    record = {"source_ref": ref or f"cli-{uuid.uuid4()}", "text": text, "source": source,
              "nps_score": nps, "csat_score": csat, "product": product}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.post(f"{base}/v1/events", json={k: v for k, v in record.items() if v is not None},
                          headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise TransientError(f"cannot reach {base}: {exc}") from exc
    if resp.status_code != 202:
        console.print(f"[red]{resp.status_code}[/red] {resp.text}")
        raise typer.Exit(1)
    feedback_id = uuid.UUID(resp.json()["feedback_ids"][0])
    # the form the warehouse stores: SQLite keeps a UUID as 32 hex digits, PostgreSQL with dashes
    stored = feedback_id.hex if load(SinkSettings).database_url.startswith("sqlite") else str(feedback_id)
    console.print(f"accepted: source_ref {record['source_ref']}, feedback_id {feedback_id}")
    typer.echo(stored)


# -- backfill, replay, report, retention (their modules hold the options and the work) -----------
from connectors.backfill.commands import import_command, replay_command  # noqa: E402
from sinks.report.commands import report_command  # noqa: E402
from sinks.warehouse.commands import erase_command, purge_command  # noqa: E402

app.command("import")(import_command)
app.command("replay")(replay_command)
app.command("report")(report_command)
app.command("purge")(purge_command)
app.command("erase")(erase_command)

# -- enrichment quality (issue 5): the evaluation CLI and the optional category model ----------
from processors.commands import eval_command, train_categories_command  # noqa: E402

app.command("eval")(eval_command)
app.command("train-categories")(train_categories_command)

# -- learning from the organisation's own feedback (issue 17) ----------------------------------
from processors.learning.commands import models_app, train_sentiment_command  # noqa: E402
from sinks.warehouse.labels import label_command  # noqa: E402

app.command("train-sentiment")(train_sentiment_command)
app.command("label")(label_command)
app.add_typer(models_app, name="models")


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
    except TransientError as exc:
        console.print(f"[red]unavailable:[/red] {exc}")
        sys.exit(3)
