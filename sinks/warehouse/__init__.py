"""The SQL warehouse: SQLAlchemy models, Alembic migrations, the batched idempotent writer and its consumer."""
