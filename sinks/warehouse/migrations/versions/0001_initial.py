"""Initial warehouse: feedback fact table and its categories.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("feedback_id", sa.Uuid(), primary_key=True),
        sa.Column("schema_version", sa.SmallInteger(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(500)),
        sa.Column("source_ref", sa.String(500), nullable=False),
        sa.Column("thread_ref", sa.String(500)),
        sa.Column("customer_ref", sa.String(500)),
        sa.Column("subject", sa.String(1000)),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(35)),
        sa.Column("nps_score", sa.SmallInteger()),
        sa.Column("nps_class", sa.String(16)),
        sa.Column("csat_score", sa.SmallInteger()),
        sa.Column("stars", sa.SmallInteger()),
        sa.Column("product", sa.String(500)),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("sentiment_polarity", sa.Float(), nullable=False),
        sa.Column("sentiment_subjectivity", sa.Float(), nullable=False),
        sa.Column("sentiment_label", sa.String(16), nullable=False),
        sa.Column("sentiment_analyzer", sa.String(50), nullable=False),
        sa.Column("primary_category", sa.String(100), nullable=False),
        sa.Column("event_time", TZ, nullable=False),
        sa.Column("event_date", sa.Date(), nullable=False),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("processed_at", TZ, nullable=False),
        sa.Column("written_at", TZ, nullable=False),
    )
    op.create_index("ix_feedback_event_time", "feedback", ["event_time"])
    op.create_index("ix_feedback_event_date_source", "feedback", ["event_date", "source"])
    op.create_index("ix_feedback_product", "feedback", ["product"])
    op.create_index("ix_feedback_customer_ref", "feedback", ["customer_ref"])
    op.create_index("ix_feedback_sentiment_label", "feedback", ["sentiment_label"])
    op.create_table(
        "feedback_categories",
        sa.Column("feedback_id", sa.Uuid(), sa.ForeignKey("feedback.feedback_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("category", sa.String(100), primary_key=True),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
    )
    op.create_index("ix_feedback_categories_category", "feedback_categories", ["category"])


def downgrade() -> None:
    op.drop_table("feedback_categories")
    op.drop_table("feedback")
