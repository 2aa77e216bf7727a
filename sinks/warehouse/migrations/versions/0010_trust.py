"""Trust: the origin of each feedback row (who delivered it), so that only that origin may update it.

Rows written before this revision take their ``source`` as origin (what the writer assumes for a
record that carries no origin), so the connectors that wrote them keep updating them.

Revision ID: 0010_trust
Revises: 0007_views
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_trust"
down_revision = "0007_views"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("origin", sa.String(100)))
    op.execute("UPDATE feedback SET origin = source WHERE origin IS NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE feedback DROP COLUMN origin")  # SQLite >= 3.35 and PostgreSQL alike
