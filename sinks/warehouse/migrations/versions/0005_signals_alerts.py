"""Degrading signals: closed signal windows, alerts, alert history and the notification outbox.

Revision ID: 0005_signals
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_signals"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
ACTIVE_WHERE = "status IN ('open', 'acknowledged')"


def upgrade() -> None:
    op.create_table(
        "signal_windows",
        sa.Column("window_id", sa.Uuid(), primary_key=True),
        sa.Column("scope_type", sa.String(16), nullable=False),
        sa.Column("scope_value", sa.String(500), nullable=False),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("window_seconds", sa.Integer(), nullable=False),
        sa.Column("volume", sa.Integer(), nullable=False),
        sa.Column("negative", sa.Integer(), nullable=False),
        sa.Column("neutral", sa.Integer(), nullable=False),
        sa.Column("positive", sa.Integer(), nullable=False),
        sa.Column("negative_share", sa.Float()),
        sa.Column("sentiment_mean", sa.Float()),
        sa.Column("sentiment_std", sa.Float()),
        sa.Column("nps_responses", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("nps", sa.Float()),
        sa.Column("csat_responses", sa.Integer(), nullable=False),
        sa.Column("csat_mean", sa.Float()),
        sa.Column("csat_std", sa.Float()),
        sa.Column("closed_at", TZ, nullable=False),
        sa.Column("written_at", TZ, nullable=False),
        sa.Column("evaluated_at", TZ),
        sa.Column("detection", sa.JSON()),
    )
    op.create_index("ux_signal_windows_scope_window", "signal_windows",
                    ["scope_type", "scope_value", "window_seconds", "window_start"], unique=True)
    op.create_index("ix_signal_windows_window_start", "signal_windows", ["window_start"])

    op.create_table(
        "alerts",
        sa.Column("alert_id", sa.Uuid(), primary_key=True),
        sa.Column("signal", sa.String(50), nullable=False),
        sa.Column("scope_type", sa.String(16), nullable=False),
        sa.Column("scope_value", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("first_window_start", TZ, nullable=False),
        sa.Column("window_start", TZ, nullable=False),
        sa.Column("window_end", TZ, nullable=False),
        sa.Column("observed", sa.Float(), nullable=False),
        sa.Column("expected", sa.Float(), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("z_score", sa.Float()),
        sa.Column("opened_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("acknowledged_at", TZ),
        sa.Column("acknowledged_by", sa.String(500)),
        sa.Column("resolved_at", TZ),
        sa.Column("resolved_by", sa.String(500)),
        sa.Column("in_control_streak", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
    )
    # Never a second active alert for one (signal, scope): enforced by the database as well.
    op.create_index("ux_alerts_active_scope", "alerts", ["signal", "scope_type", "scope_value"], unique=True,
                    sqlite_where=sa.text(ACTIVE_WHERE), postgresql_where=sa.text(ACTIVE_WHERE))
    op.create_index("ix_alerts_status_opened", "alerts", ["status", "opened_at"])

    op.create_table(
        "alert_history",
        sa.Column("history_id", sa.Uuid(), primary_key=True),
        sa.Column("alert_id", sa.Uuid(), sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(500), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("window_start", TZ),
        sa.Column("observed", sa.Float()),
        sa.Column("expected", sa.Float()),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("note", sa.Text()),
        sa.Column("notified", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_alert_history_alert_at", "alert_history", ["alert_id", "at"])
    op.create_index("ix_alert_history_notified", "alert_history", ["notified"])

    op.create_table(
        "alert_deliveries",
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("event_at", TZ, nullable=False),
        sa.Column("window_start", TZ),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("delivered_at", TZ),
    )
    op.create_index("ix_alert_deliveries_due", "alert_deliveries", ["channel", "status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("alert_deliveries")
    op.drop_table("alert_history")
    op.drop_table("alerts")
    op.drop_table("signal_windows")
