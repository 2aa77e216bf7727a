"""Analytics on the spine tables: customers, retention log, indexes for the usual filters, views.

Views (same columns on SQLite and PostgreSQL; the SQL behind them differs where dates do):

- ``v_feedback``: the feedback table plus portable date keys ``event_week`` (the Monday, a date),
  ``event_month`` (``'YYYY-MM'``) and ``age_days`` (whole days before today, UTC);
- ``v_daily_sentiment``: day (and its ``age_days``) x source x category: volume, assessed, negative,
  negative_share, mean_polarity;
- ``v_weekly_nps``: week: responses, promoters, passives, detractors, nps;
- ``v_csat_by_category``: month x category: responses, satisfied (4-5), csat_pct, csat_mean.

Revision ID: 0006_analytics
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_analytics"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

#: Date keys per dialect: (event_week, event_month, age_days) as SQL expressions over ``f``.
DATE_KEYS = {
    "sqlite": (
        "date(f.event_date, 'weekday 0', '-6 days')",
        "strftime('%Y-%m', f.event_date)",
        "CAST(julianday(date('now')) - julianday(f.event_date) AS INTEGER)",
    ),
    "postgresql": (
        "CAST(date_trunc('week', f.event_date) AS date)",
        "to_char(f.event_date, 'YYYY-MM')",
        "(CAST(timezone('UTC', now()) AS date) - f.event_date)",
    ),
}

V_DAILY_SENTIMENT = """
CREATE VIEW v_daily_sentiment AS
SELECT f.event_date AS event_date, {age} AS age_days, f.source AS source, c.category AS category,
       COUNT(*) AS volume,
       SUM(CASE WHEN f.sentiment_label <> 'not_assessed' THEN 1 ELSE 0 END) AS assessed,
       SUM(CASE WHEN f.sentiment_label = 'negative' THEN 1 ELSE 0 END) AS negative,
       CAST(SUM(CASE WHEN f.sentiment_label = 'negative' THEN 1 ELSE 0 END) AS FLOAT)
           / NULLIF(SUM(CASE WHEN f.sentiment_label <> 'not_assessed' THEN 1 ELSE 0 END), 0) AS negative_share,
       AVG(CASE WHEN f.sentiment_label <> 'not_assessed' THEN f.sentiment_polarity END) AS mean_polarity
FROM feedback f JOIN feedback_categories c ON c.feedback_id = f.feedback_id
GROUP BY f.event_date, f.source, c.category
"""

V_WEEKLY_NPS = """
CREATE VIEW v_weekly_nps AS
SELECT event_week,
       COUNT(*) AS responses,
       SUM(CASE WHEN nps_class = 'promoter' THEN 1 ELSE 0 END) AS promoters,
       SUM(CASE WHEN nps_class = 'passive' THEN 1 ELSE 0 END) AS passives,
       SUM(CASE WHEN nps_class = 'detractor' THEN 1 ELSE 0 END) AS detractors,
       CAST(100 * (SUM(CASE WHEN nps_class = 'promoter' THEN 1 ELSE 0 END)
                   - SUM(CASE WHEN nps_class = 'detractor' THEN 1 ELSE 0 END)) AS FLOAT) / COUNT(*) AS nps
FROM v_feedback
WHERE nps_score IS NOT NULL
GROUP BY event_week
"""

V_CSAT_BY_CATEGORY = """
CREATE VIEW v_csat_by_category AS
SELECT f.event_month AS event_month, c.category AS category,
       COUNT(*) AS responses,
       SUM(CASE WHEN f.csat_score >= 4 THEN 1 ELSE 0 END) AS satisfied,
       CAST(100 * SUM(CASE WHEN f.csat_score >= 4 THEN 1 ELSE 0 END) AS FLOAT) / COUNT(*) AS csat_pct,
       AVG(CAST(f.csat_score AS FLOAT)) AS csat_mean
FROM v_feedback f JOIN feedback_categories c ON c.feedback_id = f.feedback_id
WHERE f.csat_score IS NOT NULL
GROUP BY f.event_month, c.category
"""

#: Customers of the feedback already in the warehouse (the sink keeps the table current from here on).
BACKFILL_CUSTOMERS = """
INSERT INTO customers (customer_ref, first_seen_at, last_seen_at, feedback_count, negative_count, nps_responses,
                       promoters, detractors, csat_responses, csat_mean, updated_at)
SELECT customer_ref, MIN(event_time), MAX(event_time), COUNT(*),
       SUM(CASE WHEN sentiment_label = 'negative' THEN 1 ELSE 0 END), COUNT(nps_score),
       SUM(CASE WHEN nps_class = 'promoter' THEN 1 ELSE 0 END),
       SUM(CASE WHEN nps_class = 'detractor' THEN 1 ELSE 0 END), COUNT(csat_score),
       AVG(CAST(csat_score AS FLOAT)), MAX(written_at)
FROM feedback
WHERE customer_ref IS NOT NULL
GROUP BY customer_ref
"""

VIEWS = ("v_csat_by_category", "v_weekly_nps", "v_daily_sentiment", "v_feedback")


def v_feedback_sql(dialect: str) -> str:
    week, month, age = DATE_KEYS["postgresql" if dialect == "postgresql" else "sqlite"]
    return (f"CREATE VIEW v_feedback AS SELECT f.*, {week} AS event_week, {month} AS event_month, "
            f"{age} AS age_days FROM feedback f")


def upgrade() -> None:
    op.create_table(
        "customers",
        sa.Column("customer_ref", sa.String(500), primary_key=True),
        sa.Column("first_seen_at", TZ, nullable=False),
        sa.Column("last_seen_at", TZ, nullable=False),
        sa.Column("feedback_count", sa.Integer(), nullable=False),
        sa.Column("negative_count", sa.Integer(), nullable=False),
        sa.Column("nps_responses", sa.Integer(), nullable=False),
        sa.Column("promoters", sa.Integer(), nullable=False),
        sa.Column("detractors", sa.Integer(), nullable=False),
        sa.Column("csat_responses", sa.Integer(), nullable=False),
        sa.Column("csat_mean", sa.Float()),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_customers_last_seen_at", "customers", ["last_seen_at"])
    op.execute(BACKFILL_CUSTOMERS)
    op.create_table(
        "retention_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("criteria", sa.String(500), nullable=False),
        sa.Column("deleted", sa.JSON(), nullable=False),
        sa.Column("actor", sa.String(200)),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_feedback_category_date", "feedback", ["primary_category", "event_date"])
    dialect = op.get_bind().dialect.name
    op.execute(v_feedback_sql(dialect))
    op.execute(V_DAILY_SENTIMENT.format(age=DATE_KEYS["postgresql" if dialect == "postgresql" else "sqlite"][2]))
    op.execute(V_WEEKLY_NPS)
    op.execute(V_CSAT_BY_CATEGORY)


def downgrade() -> None:
    for view in VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.drop_index("ix_feedback_category_date", "feedback")
    op.drop_table("retention_log")
    op.drop_table("customers")
