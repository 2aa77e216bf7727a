"""The alert sink's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline.plugins import Service

#: ``feedback up`` runs the alert sink (degrading signals -> alerts and incidents).
SERVICE = Service(("sink", "alerts"), order=30)
