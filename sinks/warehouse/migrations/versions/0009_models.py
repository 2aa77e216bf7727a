"""Learning: trained models, analyst corrections, and which model labelled each feedback row.

- ``models``: one row per trained model version (kind sentiment|category, created_at, training
  counts, metrics on its holdout, file and SHA-256, active flag); the model directory's cards and
  pointer files are what the processor reads, this table is their catalogue for SQL;
- ``feedback_labels``: one row per analyst correction (who, when, the label before and after);
- ``feedback.sentiment_model``: the trained model's version, or the shipped analyzer's name;
- ``v_label_corrections_daily``: day x kind: corrections, items corrected, analysts.

Revision ID: 0009_models
Revises: 0007_views
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_models"
down_revision = "0007_views"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

V_LABEL_CORRECTIONS_DAILY = """
CREATE VIEW v_label_corrections_daily AS
SELECT corrected_date, kind, COUNT(*) AS corrections, COUNT(DISTINCT feedback_id) AS items,
       COUNT(DISTINCT analyst) AS analysts
FROM feedback_labels
GROUP BY corrected_date, kind
"""


def upgrade() -> None:
    op.add_column("feedback", sa.Column("sentiment_model", sa.String(100)))
    op.create_table(
        "models",
        sa.Column("version", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("n_train", sa.Integer, nullable=False),
        sa.Column("n_holdout", sa.Integer, nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("file", sa.String(1000), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("activated_at", TZ),
    )
    op.create_index("ix_models_kind_active", "models", ["kind", "active"])
    op.create_table(
        "feedback_labels",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("feedback_id", sa.Uuid, sa.ForeignKey("feedback.feedback_id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.Column("previous", sa.String(500)),
        sa.Column("analyst", sa.String(200), nullable=False),
        sa.Column("corrected_at", TZ, nullable=False),
        sa.Column("corrected_date", sa.Date, nullable=False),
    )
    op.create_index("ix_feedback_labels_feedback_id", "feedback_labels", ["feedback_id"])
    op.create_index("ix_feedback_labels_corrected_date", "feedback_labels", ["corrected_date"])
    op.execute(V_LABEL_CORRECTIONS_DAILY)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS v_label_corrections_daily")
    op.drop_table("feedback_labels")
    op.drop_index("ix_models_kind_active", table_name="models")
    op.drop_table("models")
    op.execute("ALTER TABLE feedback DROP COLUMN sentiment_model")  # SQLite >= 3.35 and PostgreSQL alike
