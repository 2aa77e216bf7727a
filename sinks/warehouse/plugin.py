"""The warehouse sink's registration with the kernel (entry points in pyproject.toml)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console

from pipeline import logging as plog
from pipeline.config import SinkSettings, load
from pipeline.plugins import Service


def migrate_before_start(env: Mapping[str, str]) -> None:
    """Bring the schema up once before the sinks start: otherwise both sinks migrate a new database at
    the same moment and one of them fails and retries ("table ... already exists")."""
    from sinks.warehouse.db import make_engine, migrate

    engine = make_engine(env["FEEDBACK_WAREHOUSE_URL"])
    try:
        migrate(engine)
    finally:
        engine.dispose()


#: ``feedback up`` runs the warehouse sink first (after migrating the warehouse).
SERVICE = Service(("sink", "warehouse"), order=10, prepare=migrate_before_start)


def sink_warehouse() -> None:
    """Run the warehouse sink (feedback.enriched -> SQL)."""
    from sinks.warehouse.consumer import run

    settings = load(SinkSettings)
    plog.configure(settings.log_level, settings.log_format, "sink")
    run(settings)


def migrate_command() -> None:
    """Bring the warehouse schema to the latest revision."""
    from sinks.warehouse.db import current_revisions, make_engine, migrate

    engine = make_engine(load(SinkSettings).database_url)
    migrate(engine)
    Console(stderr=True).print(f"warehouse at revision {', '.join(current_revisions(engine))}")
