"""The HTTP ingestion service's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline.plugins import Service

#: ``feedback up`` runs the HTTP service (forms, /v1/events, webhooks) after the consumers.
SERVICE = Service(("serve-http",), order=40)
