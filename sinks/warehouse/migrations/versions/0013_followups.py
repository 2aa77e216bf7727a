"""Follow-ups: ``contacts`` (consenting customers' addresses, encrypted) and ``followups`` (the trail).

Revision ID: 0013_followups
Revises: 0007_views
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_followups"
down_revision = "0007_views"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("feedback_id", sa.Uuid(), primary_key=True),
        sa.Column("customer_ref", sa.String(500)),
        sa.Column("address_encrypted", sa.Text(), nullable=False),
        sa.Column("consented_at", TZ, nullable=False),
    )
    op.create_index("ix_contacts_customer_ref", "contacts", ["customer_ref"])
    op.create_table(
        "followups",
        sa.Column("feedback_id", sa.Uuid(), primary_key=True),
        sa.Column("customer_ref", sa.String(500)),
        sa.Column("target", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ticket_id", sa.String(100)),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(2000)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_followups_customer_ref", "followups", ["customer_ref"])
    op.create_index("ix_followups_status", "followups", ["status"])


def downgrade() -> None:
    op.drop_table("followups")
    op.drop_table("contacts")
