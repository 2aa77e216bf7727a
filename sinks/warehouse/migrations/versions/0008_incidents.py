"""Incidents: one row per problem, its trail, and ``alerts.incident_id`` linking member alerts.

- ``incidents``: kind (signal | emerging_theme), status, severity, the driver scope, the signals
  involved, the share of the overall rise the driver explains, event-time start, figures, examples;
- ``incident_history``: every state change of an incident (detector or operator), with the outbox flag;
- ``alerts.incident_id``: the incident an alert belongs to (NULL for alerts opened before this).

Revision ID: 0008_incidents
Revises: 0007_views, 0005_signals (which created alerts: a merge point, not a depends_on, so that
         0005 is no longer a head once this is applied)
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_incidents"
down_revision = ("0007_views", "0005_signals")  # 0005: the alerts table
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("incident_id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("driver_scope_type", sa.String(16), nullable=False),
        sa.Column("driver_scope_value", sa.String(500), nullable=False),
        sa.Column("signals", sa.JSON(), nullable=False),
        sa.Column("explained_share", sa.Float()),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ),
        sa.Column("acknowledged_by", sa.String(500)),
        sa.Column("resolved_at", TZ),
        sa.Column("resolved_by", sa.String(500)),
        sa.Column("observed", sa.Float()),
        sa.Column("expected", sa.Float()),
        sa.Column("sample_size", sa.Integer()),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("examples", sa.JSON(), nullable=False),
    )
    op.create_index("ix_incidents_status_opened", "incidents", ["status", "opened_at"])
    op.create_table(
        "incident_history",
        sa.Column("history_id", sa.Uuid(), primary_key=True),
        sa.Column("incident_id", sa.Uuid(), sa.ForeignKey("incidents.incident_id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(500), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("notified", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_incident_history_incident_at", "incident_history", ["incident_id", "at"])
    op.create_index("ix_incident_history_notified", "incident_history", ["notified"])
    op.add_column("alerts", sa.Column("incident_id", sa.Uuid()))
    op.create_index("ix_alerts_incident_id", "alerts", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_alerts_incident_id", table_name="alerts")
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("incident_id")
    op.drop_index("ix_incident_history_notified", table_name="incident_history")
    op.drop_index("ix_incident_history_incident_at", table_name="incident_history")
    op.drop_table("incident_history")
    op.drop_index("ix_incidents_status_opened", table_name="incidents")
    op.drop_table("incidents")
