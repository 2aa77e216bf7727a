"""The alert sink's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline import logging as plog
from pipeline.config import load
from pipeline.plugins import Service
from pipeline.signal_config import AlertSettings

#: ``feedback up`` runs the alert sink (degrading signals -> alerts and incidents).
SERVICE = Service(("sink", "alerts"), order=30)


def sink_alerts() -> None:
    """Run the alert sink (feedback.signals -> detector -> warehouse, feedback.alerts, webhooks, e-mail)."""
    from sinks.alerts.consumer import run

    settings = load(AlertSettings)
    plog.configure(settings.log_level, settings.log_format, "alerts")
    run(settings)
