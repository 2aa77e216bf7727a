"""Run the HTTP ingestion service with uvicorn."""

from __future__ import annotations

import uvicorn

from connectors.http.app import create_app
from pipeline.config import HttpSettings


def run(settings: HttpSettings) -> None:
    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=5,
        limit_concurrency=2000,
    )
