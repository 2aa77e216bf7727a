"""The Zendesk connector's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from typing import Annotated

import typer

from pipeline import logging as plog
from pipeline.config import ZendeskSettings, load


def connector_zendesk(
    once: Annotated[bool, typer.Option("--once", help="Stop at the end of the export stream.")] = False,
) -> None:
    """Poll Zendesk's incremental ticket export (tickets, public comments, CSAT) into feedback.raw."""
    from connectors.tickets.poller import run

    settings = load(ZendeskSettings)
    plog.configure(settings.log_level, settings.log_format, "zendesk")
    run(settings, once=once)
