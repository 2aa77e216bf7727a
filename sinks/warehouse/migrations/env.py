"""Alembic environment: runs on the connection handed over by :func:`sinks.warehouse.db.migrate`.

Autogenerate and ``alembic check`` compare the database with every table the code declares: each
module of :mod:`sinks.warehouse` is imported (a model declared on ``Base`` there is seen without any
registration), and so is everything registered under the ``feedback.tables`` entry-point group (a
module declaring models on ``Base`` elsewhere, or a ``MetaData`` / declarative base of its own).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from sinks.warehouse.db import declared_metadata

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
