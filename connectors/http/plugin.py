"""The HTTP ingestion service's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline import logging as plog
from pipeline.config import HttpSettings, load
from pipeline.plugins import Service

#: ``feedback up`` runs the HTTP service (forms, /v1/events, webhooks) after the consumers.
SERVICE = Service(("serve-http",), order=40)


def serve_http() -> None:
    """Run the HTTP ingestion service (forms, /v1/events, /metrics)."""
    from connectors.http.server import run

    settings = load(HttpSettings)
    plog.configure(settings.log_level, settings.log_format, "http")
    run(settings)
