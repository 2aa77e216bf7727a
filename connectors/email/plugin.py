"""The e-mail connector's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from pipeline import logging as plog
from pipeline.config import load
from pipeline.errors import ConfigError
from pipeline.plugins import Service


def _imap_configured() -> bool:
    from connectors.email.settings import imap_configured

    return imap_configured()


#: ``feedback up`` runs the IMAP connector only when FEEDBACK_IMAP_HOST is set.
SERVICE = Service(("connector", "email"), order=50, enabled=_imap_configured)


def connector_email() -> None:
    """Read IMAP mailbox folders (FEEDBACK_IMAP_*) into feedback.raw; IDLE or poll until Ctrl-C."""
    from connectors.email.imap import run
    from connectors.email.settings import EmailSettings

    settings = load(EmailSettings)
    plog.configure(settings.log_level, settings.log_format, "email")
    run(settings)


def import_mbox(
    path: Annotated[Path, typer.Argument(help="An mbox file, an .eml file or a folder of .eml files.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
) -> None:
    """Backfill an e-mail archive through the e-mail connector's parsing and publishing path."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from connectors.email.mbox import count_messages, import_archive, make_ingestor
    from connectors.email.settings import EmailSettings

    console = Console(stderr=True)
    settings = load(EmailSettings)
    plog.configure(settings.log_level, settings.log_format, "import-mbox")
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
