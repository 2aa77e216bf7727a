"""The ``feedback`` command line (Typer)."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from pipeline import logging as plog
from pipeline import plugins
from pipeline.config import (
    CommonSettings,
    HttpSettings,
    ProcessorSettings,
    SinkSettings,
    UpSettings,
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
    settings.customer_key(create=True)  # the one key every child uses (a random key once, kept in data_dir)
    sup = Supervisor(settings, with_broker=settings.uses_embedded_broker and not no_broker)
    console.print(_banner(settings, sup))
    raise typer.Exit(sup.run())


def _banner(settings: UpSettings, sup: Any) -> str:
    """What `feedback up` runs and where: every child with its port, the broker, the data."""
    from pipeline.signal_config import AlertSettings

    base = f"http://{settings.http_host}:{settings.http_port}"
    internal = f"http://127.0.0.1:{settings.http_internal_port}" if settings.http_internal_port else base
    metrics = {"sink": load(SinkSettings).metrics_port, "processor": load(ProcessorSettings).metrics_port,
               "alerts": load(AlertSettings).metrics_port}
    broker_kind = {"tansu": "embedded Tansu, in memory", "kafka": "Apache Kafka, data kept"}[settings.embedded_broker]
    lines = ["[bold]Feedback pipeline[/bold]  (Ctrl-C to stop)",
             f"  feedback form  {base}/forms/default",
             f"  events API     {base}/v1/events   (docs: {internal}/docs, metrics: {internal}/metrics)",
             f"  broker         {settings.bootstrap}{f' ({broker_kind})' if sup.with_broker else ''}",
             f"  warehouse      {settings.database_url}",
             f"  data           {settings.data_dir}",
             "  components"]
    for child in sup.children:
        port = child.env.get("FEEDBACK_PROCESSOR_METRICS_PORT") or metrics.get(child.name)
        others = {"http": f"{internal}/metrics", "broker": settings.bootstrap}
        where = f"http://127.0.0.1:{port}/metrics" if port else others.get(child.name, "")
        lines.append(f"    {child.name:<14} {where}")
    return "\n".join(lines)


@app.command()
def status(
    endpoint: Annotated[list[str] | None, typer.Option(
        "--endpoint", help="NAME=URL of a component's metrics/health server (repeatable); replaces the local list "
        "(for a remote deployment).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Health, readiness, consumer lag and errors of every component, the broker, and where the data lives."""
    import json

    from rich.table import Table

    from pipeline import status as st

    settings = load(UpSettings)
    targets = None
    if endpoint:
        pairs = [e.partition("=") for e in endpoint]
        bad = [e for e, (_, eq, url) in zip(endpoint, pairs, strict=True) if not eq or not url]
        if bad:
            raise ConfigError(f"--endpoint takes NAME=URL, got {bad[0]!r}")
        targets = {name: url for name, _, url in pairs}
    result = st.collect(settings, targets)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        table = Table("component", "health", "ready", "lag", "errors", "detail")
        for c in result["components"]:
            table.add_row(c["name"], "ok" if c["healthy"] else "down", "yes" if c["ready"] else "no",
                          "" if c["lag"] is None else f"{c['lag']:.0f}",
                          "" if c["errors"] is None else f"{c['errors']:.0f}", c["detail"] or c["url"])
        b = result["broker"]
        table.add_row("broker", "ok" if b["reachable"] else "down", "yes" if b["ready"] else "no", "", "",
                      f"{b['bootstrap']} ({b['brokers'] or 0} brokers)")
        Console().print(table)
        Console().print(f"data: {result['data_dir']}   warehouse: {result['warehouse']}")
    raise typer.Exit(0 if st.all_ready(result) else 1)


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


@app.command()
def schema(out: Annotated[Path, typer.Option(help="Directory for the JSON Schema files.")] = Path("schemas")) -> None:
    """Write the JSON Schema files that outside producers validate against."""
    from pipeline.signal_schema import write_json_schemas

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


# -- every other command belongs to a component, which registers it ----------------------------
# A component adds a command with one line in pyproject.toml, then `pip install -e .` (or `make install`):
#     [project.entry-points."feedback.commands"]
#     report = "sinks.report.commands:report_command"          # feedback report
#     alerts = "sinks.alerts.commands:alerts_app"              # a typer.Typer: feedback alerts ...
#     "connector.email" = "connectors.email.plugin:connector_email"  # feedback connector email
# (a dotted name puts the command in the `sink` or `connector` group below); pipeline/plugins.py loads
# them. This module never imports a component (make lint checks it).
plugins.add_commands(app, {"sink": sink_app, "connector": connector_app})


def run(typer_app: typer.Typer) -> None:
    """Run a Typer app as ``feedback`` runs: a ConfigError exits 2 and a TransientError 3, with the message."""
    try:
        typer_app()
    except ConfigError as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        sys.exit(2)
    except TransientError as exc:
        console.print(f"[red]unavailable:[/red] {exc}")
        sys.exit(3)


def main() -> None:
    run(app)
