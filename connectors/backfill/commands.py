"""The ``feedback import`` and ``feedback replay`` commands (registered in :mod:`pipeline.cli`)."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from pipeline.errors import ConfigError

console = Console(stderr=True)


#: What to do about a rejection reason, said next to it.
HINTS = {
    "invalid_date": " -> give the file's format with --date-format, e.g. --date-format '%d/%m/%Y %H:%M' "
                    "(strptime codes), and the zone of dates without an offset with --timezone",
    "invalid_nps": " -> check that --nps names the 0-10 column",
    "invalid_csat": " -> check that --csat names the 1-5 column",
}


def _show_mapping(file: Path, kind: str, spec: Any, sheet: str | None) -> None:
    """Print which column feeds which field (named, or found from the headers) before a dry run."""
    from .readers import read_rows

    first = next(read_rows(file, kind, sheet), None)
    if first is None:
        console.print("the file has no rows")
        return
    headers = [h for h in first[1] if not h.startswith("__")]
    resolved = spec.resolve(headers, strict=kind != "jsonl")
    console.print(f"column mapping (dataset {spec.dataset or file.stem!r}, source {resolved.source}, "
                  f"dates {resolved.date_format or 'ISO 8601'} in {resolved.timezone}):", markup=False)
    for field, column in resolved.columns.items():
        how = "named" if field in spec.columns else "found from the headers"
        console.print(f"  {field:<8} <- {column!r} ({how})", markup=False)
    unused = [h for h in headers if h not in resolved.columns.values()]
    if unused:
        console.print(f"  not used: {', '.join(repr(h) for h in unused)}", markup=False)


def _customer_key(settings: Any, dry_run: bool) -> bytes:
    """The pipeline's customer-hash key; a new one would hash the same customer to another reference,
    which ``feedback erase`` would then miss. A dry run publishes nothing, so it may use a throwaway key."""
    try:
        return settings.customer_key(create=False)  # type: ignore[no-any-return]
    except ConfigError:
        if dry_run:
            return secrets.token_bytes(32)
        raise


def import_command(
    file: Annotated[Path, typer.Argument(help="A survey export: .csv, .jsonl or .xlsx.")],
    mapping: Annotated[Path | None, typer.Option(help="YAML column mapping (see docs/analysts.md).")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Column of the comment.")] = None,
    nps: Annotated[str | None, typer.Option("--nps", help="Column of the 0-10 NPS score.")] = None,
    csat: Annotated[str | None, typer.Option("--csat", help="Column of the 1-5 CSAT score.")] = None,
    stars: Annotated[str | None, typer.Option("--stars", help="Column of a 1-5 star rating.")] = None,
    date: Annotated[str | None, typer.Option("--date", help="Column of the response time.")] = None,
    email: Annotated[str | None, typer.Option("--email", help="Column of the e-mail (hashed, never sent).")] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="Column of a unique response id.")] = None,
    product: Annotated[str | None, typer.Option("--product", help="Column of the product.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Namespace of the ids (default: the file name).")] = None,
    source: Annotated[str | None, typer.Option(help="email|webform|ticket|event (default event).")] = None,
    date_format: Annotated[str | None, typer.Option(help="strptime format, e.g. '%d/%m/%Y %H:%M'.")] = None,
    timezone: Annotated[str | None, typer.Option(help="Zone of dates without an offset (default UTC).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="csv|jsonl|xlsx (default: from the name).")] = None,
    sheet: Annotated[str | None, typer.Option(help="XLSX sheet (default: the first).")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Write rejected rows with reasons (JSONL).")] = None,
    republish: Annotated[bool, typer.Option(help="Publish rows the warehouse already holds as well.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Map and validate only; publish nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Backfill a survey export (CSV/JSONL/XLSX) through Kafka; re-runnable without duplicates."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from pipeline.config import load
    from pipeline.logging import configure
    from pipeline.publisher import Publisher
    from pipeline.signal_config import BackfillSettings

    from .importer import WarehouseIds, import_file
    from .mapping import Mapping
    from .readers import count_rows, detect_format

    settings = load(BackfillSettings)
    configure(settings.log_level, settings.log_format, "import")
    if not file.is_file():
        raise ConfigError(f"no such file: {file}")
    columns = {k: v for k, v in {"text": text, "nps": nps, "csat": csat, "stars": stars, "date": date,
                                 "email": email, "id": id_column, "product": product}.items() if v}
    spec = Mapping.load(mapping, columns=columns, dataset=dataset, source=source, date_format=date_format,
                        timezone=timezone)
    kind = detect_format(file, fmt)
    key = _customer_key(settings, dry_run)
    if dry_run:
        _show_mapping(file, kind, spec, sheet)
    publisher = None if dry_run else Publisher(settings, client_id="feedback-import")
    known = WarehouseIds(settings.database_url)
    columns_ui = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns_ui, console=console, transient=as_json) as progress:
            task = progress.add_task(f"importing {file.name}", total=count_rows(file, kind, sheet))
            summary = import_file(file, kind, spec, key, publisher, known, sheet=sheet,
                                  chunk=settings.import_chunk_size, republish=republish,
                                  advance=lambda n: progress.advance(task, n))
    finally:
        known.close()
        if publisher is not None:
            publisher.close()
    _report(summary, rejects, dry_run, as_json)


def _report(summary: Any, rejects: Path | None, dry_run: bool, as_json: bool) -> None:
    """Print the import's summary and the reasons of its rejects (with what to do); exit 1 when every
    row was rejected."""
    if rejects is not None:
        with rejects.open("w") as fh:
            for r in summary.rejects:
                fh.write(json.dumps(r.as_dict()) + "\n")
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    verb = "would publish" if dry_run else "published"
    console.print(f"read {summary.read}: {verb} {summary.published}, duplicates {summary.duplicates}, "
                  f"rejected {summary.rejected}")
    for reason, count in summary.by_reason.most_common():
        example = next(r for r in summary.rejects if r.reason == reason) if summary.rejects else None
        console.print(f"  rejected {count} x {reason}" + (f" (e.g. row {example.row}: {example.detail})"
                                                        if example else "") + HINTS.get(reason, ""), markup=False)
    if summary.without_date:
        console.print(f"[yellow]{summary.without_date} row(s) had no date: their event time is the import time[/]")
    if summary.read and summary.rejected == summary.read:
        nothing = "nothing would be published" if dry_run else "nothing was published"
        console.print(f"[red]every row was rejected ({summary.read}): {nothing}[/]")
        raise typer.Exit(1)


def replay_command(
    from_dlq: Annotated[bool, typer.Option("--from-dlq", help="Read the dead-letter topic (required).")] = False,
    stage: Annotated[list[str] | None, typer.Option(help="Only letters of this stage (repeatable).")] = None,
    reason: Annotated[list[str] | None, typer.Option(help="Only letters with this reason (repeatable).")] = None,
    since: Annotated[datetime | None, typer.Option(help="Only letters that occurred since then.")] = None,
    fixes: Annotated[Path | None, typer.Option(help="JSONL of fixed payloads (as --export writes it).")] = None,
    export: Annotated[Path | None, typer.Option(help="Write the matching letters here (JSONL) to fix them.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be replayed; send nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Re-send dead letters whose payload (or your fix from --fixes) now validates."""
    from datetime import UTC

    from pipeline.config import load
    from pipeline.logging import configure
    from pipeline.publisher import Publisher
    from pipeline.signal_config import BackfillSettings

    from .importer import WarehouseIds
    from .replay import ReplaySummary, load_fixes, read_dead_letters, replay, select

    if not from_dlq:
        raise ConfigError("say where to replay from: --from-dlq")
    settings = load(BackfillSettings)
    configure(settings.log_level, settings.log_format, "replay")
    fixed = load_fixes(fixes) if fixes else {}
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    summary = ReplaySummary()
    with console.status("reading the dead-letter topic ..."):
        letters = select(read_dead_letters(settings), stage or (), reason or (), since, summary)
    publisher = None if dry_run else Publisher(settings, client_id="feedback-replay")
    known = WarehouseIds(settings.database_url)
    try:
        replay(settings, letters, fixed, publisher, known, export, summary)
    finally:
        known.close()
        if publisher is not None:
            publisher.close()
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    verb = "would replay" if dry_run else "replayed"
    console.print(f"dead letters read {summary.read}, matching {summary.matched}: {verb} {summary.replayed}, "
                  f"already written {summary.already_written}, still invalid {summary.still_invalid}, "
                  f"older duplicates {summary.superseded}, of erased customers {summary.erased}"
                  + (f", exported {summary.exported}" if export else ""))
    for item in summary.invalid[:10]:
        console.print(f"  still invalid {item['dead_letter_id']} ({item['stage']}/{item['reason']}): {item['error']}")
