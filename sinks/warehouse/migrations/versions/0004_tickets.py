"""Support tickets: the current state of each ticket (status, priority, group, tags, latest CSAT).

Revision ID: 0004_tickets
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_tickets"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("ticket_key", sa.String(300), primary_key=True),
        sa.Column("system", sa.String(40), nullable=False),
        sa.Column("ticket_id", sa.String(200), nullable=False),
        sa.Column("external_key", sa.String(100)),
        sa.Column("subject", sa.String(1000)),
        sa.Column("status", sa.String(100)),
        sa.Column("priority", sa.String(100)),
        sa.Column("group_name", sa.String(500)),
        sa.Column("ticket_type", sa.String(100)),
        sa.Column("tags", sa.JSON()),
        sa.Column("is_solved", sa.Boolean()),
        sa.Column("solved_at", TZ),
        sa.Column("customer_ref", sa.String(500)),
        sa.Column("primary_category", sa.String(100)),
        sa.Column("csat_score", sa.SmallInteger()),
        sa.Column("csat_raw", sa.String(100)),
        sa.Column("csat_comment", sa.Text()),
        sa.Column("csat_at", TZ),
        sa.Column("created_at", TZ),
        sa.Column("state_at", TZ),
        sa.Column("first_seen_at", TZ, nullable=False),
        sa.Column("written_at", TZ, nullable=False),
    )
    op.create_index("ix_tickets_status", "tickets", ["status"])
    op.create_index("ix_tickets_solved_at", "tickets", ["solved_at"])
    op.create_index("ix_tickets_system", "tickets", ["system"])
    op.create_index("ix_tickets_csat_at", "tickets", ["csat_at"])


def downgrade() -> None:
    op.drop_table("tickets")
