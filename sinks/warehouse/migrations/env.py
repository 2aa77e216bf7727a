"""Alembic environment: runs on the connection handed over by :func:`sinks.warehouse.db.migrate`.

Autogenerate and ``alembic check`` compare the database with every table the code declares: each
module of :mod:`sinks.warehouse` is imported (a model declared on ``Base`` there is seen without any
registration), and so is everything registered under the ``feedback.tables`` entry-point group (a
module declaring models on ``Base`` elsewhere, or a ``MetaData`` / declarative base of its own).
"""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import entry_points

from alembic import context
from sqlalchemy import MetaData, create_engine

import sinks.warehouse
from sinks.warehouse.models import Base

#: The entry-point group naming modules or ``MetaData`` objects that declare warehouse tables.
TABLES_GROUP = "feedback.tables"


def _metadata_of(obj: object) -> MetaData | None:
    if isinstance(obj, MetaData):
        return obj
    found = getattr(obj, "metadata", None)
    return found if isinstance(found, MetaData) else None


def declared_metadata() -> list[MetaData]:
    """Every ``MetaData`` holding warehouse tables, ``Base.metadata`` first, each once."""
    for info in pkgutil.iter_modules(sinks.warehouse.__path__, "sinks.warehouse."):
        if not info.name.endswith(".migrations"):
            importlib.import_module(info.name)
    found = [Base.metadata]
    for ep in entry_points(group=TABLES_GROUP):
        meta = _metadata_of(ep.load())
        if meta is not None and all(meta is not m for m in found):
            found.append(meta)
    return found


config = context.config
target_metadata = declared_metadata()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # plain `alembic` CLI use: take the URL from the config
        engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
        with engine.begin() as conn:
            context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
            context.run_migrations()
        return
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
