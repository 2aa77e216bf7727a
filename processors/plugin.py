"""The stream processor's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline.plugins import Service

#: ``feedback up`` runs the faust processor (feedback.raw -> feedback.enriched).
SERVICE = Service(("process",), order=20)
