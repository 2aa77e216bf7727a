"""The stream processor's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from pipeline import logging as plog
from pipeline.config import ProcessorSettings, load
from pipeline.plugins import Service

#: ``feedback up`` runs the faust processor (feedback.raw -> feedback.enriched).
SERVICE = Service(("process",), order=20)


def process() -> None:
    """Run the faust stream processor (feedback.raw -> feedback.enriched)."""
    from processors.app import run_worker

    settings = load(ProcessorSettings)
    plog.configure(settings.log_level, settings.log_format, "processor")
    run_worker(settings)
