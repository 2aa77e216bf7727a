"""The HTTP service's operations routes: health, readiness, metrics and the API documentation.

``/healthz`` and ``/readyz`` are served on the public port (load balancers probe it) and on the
internal one. ``/metrics``, ``/docs`` and ``/openapi.json`` are served on the internal
port (``FEEDBACK_HTTP_INTERNAL_PORT``, on ``FEEDBACK_METRICS_HOST``: loopback unless set) and then
not on the public one; with no internal port they stay on the public port, as before.

The documentation page needs no internet: Swagger UI comes from the ``openapi-ui-bundles`` wheel
(pinned in pyproject.toml) and is served from this process, never from a CDN. (No ReDoc page: its
bundle fetches a logo from the internet.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from openapi_ui_bundles import swagger_ui
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.http import security
from connectors.http.errors import error_body
from pipeline.config import HttpSettings

TITLE = "Feedback pipeline ingestion API"
SWAGGER_ASSETS = "/docs/assets"


def operations_router(state: dict[str, Any], with_metrics: bool) -> APIRouter:
    """``/healthz``, ``/readyz`` (the publisher in ``state`` reaches the broker) and, when asked, ``/metrics``."""
    router = APIRouter(tags=["operations"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process serves requests."""
        return {"status": "ok"}

    @router.get("/readyz", responses={503: {"description": "broker not reachable"}})
    async def readyz() -> JSONResponse:
        """Readiness: the producer is connected to the broker."""
        pub = state.get("publisher")
        try:
            async with asyncio.timeout(5):
                ok = pub is not None and await pub.ready_async()
        except TimeoutError:
            ok = False
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse(error_body("not_ready", "the broker is not reachable"), status_code=503)

    if with_metrics:
        @router.get("/metrics", response_class=Response)
        async def metrics_endpoint() -> Response:
            """Prometheus metrics of this process."""
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router


def add_docs(app: FastAPI, openapi_url: str) -> None:
    """``/docs`` (Swagger UI) describing ``openapi_url``, with the packaged assets."""
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=swagger_ui.static_path), name="swagger-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=openapi_url, title=f"{TITLE} - Swagger UI",
                                   swagger_js_url=f"{SWAGGER_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{SWAGGER_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{SWAGGER_ASSETS}/favicon-32x32.png")


def create_internal_app(openapi: Callable[[], dict[str, Any]], state: dict[str, Any],
                        settings: HttpSettings) -> FastAPI:
    """The internal port's app: operations routes, ``/openapi.json`` of the public app (``openapi``) and,
    with ``FEEDBACK_HTTP_DOCS``, the documentation page. It has no lifespan: the public app owns the
    publisher. The same security headers as the public app (the docs page's policy: nothing from outside)."""
    app = FastAPI(title=f"{TITLE} (internal)", docs_url=None, redoc_url=None, openapi_url=None)
    security.install(app, settings)
    app.include_router(operations_router(state, with_metrics=True))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document() -> JSONResponse:
        return JSONResponse(openapi())

    if settings.http_docs:
        add_docs(app, "/openapi.json")
    return app
