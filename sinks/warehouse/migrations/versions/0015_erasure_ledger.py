"""Erasure ledger: the keyed hashes of erased customers, so nothing writes them back.

``feedback erase`` adds one row per customer reference it erased (under every customer-hash key,
never the address); the warehouse sink drops records of those references and DLQ replay skips
them. ``seq`` orders the rows so a sink reads only the rows added since its last batch.

Revision ID: 0015_erasure_ledger
Revises: 0014_merge
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_erasure_ledger"
down_revision = "0014_merge"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasure_ledger",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("erased_ref", sa.String(100), nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_erasure_ledger_erased_ref", "erasure_ledger", ["erased_ref"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_erasure_ledger_erased_ref", table_name="erasure_ledger")
    op.drop_table("erasure_ledger")
