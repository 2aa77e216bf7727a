"""Score-only answers: a feedback row may have no category.

A score-only answer (an NPS, CSAT or star score without a comment) is stored with an empty ``text``
(the column stays NOT NULL: "no words" is the empty string, so every reader of ``text`` keeps working),
sentiment ``not_assessed`` and no categories, so ``primary_category`` becomes nullable.

Revision ID: 0012_score_only
Revises: 0007_views
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_score_only"
down_revision = "0007_views"
branch_labels = None
depends_on = None


def _set_nullable(nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        # SQLite rebuilds the table (copy, drop, rename); the views over ``feedback`` name it, and a
        # rename checks them against the schema of that moment unless the legacy behaviour is on.
        op.execute("PRAGMA legacy_alter_table = ON")
    with op.batch_alter_table("feedback") as batch:
        batch.alter_column("primary_category", existing_type=sa.String(100), nullable=nullable)
    if sqlite:
        op.execute("PRAGMA legacy_alter_table = OFF")


def upgrade() -> None:
    _set_nullable(True)


def downgrade() -> None:
    op.execute("UPDATE feedback SET primary_category = 'other' WHERE primary_category IS NULL")
    _set_nullable(False)
