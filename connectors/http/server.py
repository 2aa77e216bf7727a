"""Run the HTTP ingestion service with uvicorn: the public port and, when set, the internal one."""

from __future__ import annotations

import asyncio
import socket

import uvicorn
from fastapi import FastAPI

from connectors.http.app import create_app
from pipeline.config import HttpSettings
from pipeline.errors import ConfigError


def internal_socket(settings: HttpSettings) -> socket.socket:
    """The internal port's listening socket, bound now so that a clash is a ConfigError naming the setting."""
    assert settings.http_internal_port is not None
    try:
        return socket.create_server((settings.metrics_host, settings.http_internal_port), reuse_port=False)
    except OSError as exc:
        raise ConfigError(f"cannot serve the internal port on {settings.metrics_host}:{settings.http_internal_port}: "
                          f"{exc.strerror or exc}; set FEEDBACK_HTTP_INTERNAL_PORT (or FEEDBACK_METRICS_HOST)") from exc


def public_config(settings: HttpSettings, app: FastAPI) -> uvicorn.Config:
    return uvicorn.Config(app, host=settings.http_host, port=settings.http_port, log_level="warning",
                          access_log=False, timeout_keep_alive=5, limit_concurrency=2000)


async def serve(settings: HttpSettings, app: FastAPI, config: uvicorn.Config) -> None:
    """Serve ``app`` (``config``) on the public port and its internal app (if any) on the internal port
    until a signal: SIGTERM stops the internal server, which hands the signal on to the public one."""
    public = uvicorn.Server(config)
    internal_app = getattr(app.state, "internal", None)
    if internal_app is None:
        await public.serve()
        return
    sock = internal_socket(settings)
    internal = uvicorn.Server(uvicorn.Config(internal_app, log_level="warning", access_log=False, lifespan="off",
                                             timeout_keep_alive=5))
    task = asyncio.create_task(internal.serve(sockets=[sock]))
    try:
        await public.serve()
    finally:
        internal.should_exit = True
        await task


def run(settings: HttpSettings) -> None:
    """On uvicorn's event loop (uvloop where installed), as ``uvicorn.run`` would."""
    app = create_app(settings)
    config = public_config(settings, app)
    with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
        runner.run(serve(settings, app, config))
