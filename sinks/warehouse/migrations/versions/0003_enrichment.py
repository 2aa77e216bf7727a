"""Enrichment: sentiment score/confidence, detected language, PII redaction counts, aspects.

Revision ID: 0003_enrichment
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_enrichment"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("feedback", sa.Column("sentiment_score", sa.Float()))
    op.add_column("feedback", sa.Column("sentiment_confidence", sa.Float()))
    op.add_column("feedback", sa.Column("detected_language", sa.String(35)))
    op.add_column("feedback", sa.Column("language_confidence", sa.Float()))
    op.add_column("feedback", sa.Column("redacted", sa.Boolean()))
    op.add_column("feedback", sa.Column("redactions", sa.JSON()))
    op.create_index("ix_feedback_detected_language", "feedback", ["detected_language"])
    op.create_table(
        "feedback_aspects",
        sa.Column("feedback_id", sa.Uuid(), sa.ForeignKey("feedback.feedback_id", ondelete="CASCADE"),
                  primary_key=True),
        sa.Column("sentence", sa.Integer(), primary_key=True),
        sa.Column("category", sa.String(100), primary_key=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("sentiment_label", sa.String(16), nullable=False),
        sa.Column("sentiment_score", sa.Float()),
    )
    op.create_index("ix_feedback_aspects_category_label", "feedback_aspects", ["category", "sentiment_label"])


def downgrade() -> None:
    op.drop_table("feedback_aspects")
    op.drop_index("ix_feedback_detected_language", "feedback")
    for column in ("redactions", "redacted", "language_confidence", "detected_language",
                   "sentiment_confidence", "sentiment_score"):
        if op.get_bind().dialect.name == "sqlite":
            # SQLite >= 3.35 drops a column in place; a batch copy would break views on the table
            op.execute(f'ALTER TABLE feedback DROP COLUMN "{column}"')
        else:
            op.drop_column("feedback", column)
