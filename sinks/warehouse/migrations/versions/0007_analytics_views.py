"""Analytics views over other features' tables (tickets, aspects); merges their branches.

- ``v_csat_by_group``: support group: rated tickets, satisfied (4-5), csat_pct, csat_mean (latest
  rating of each ticket, from ``tickets``);
- ``v_top_negative_aspects``: month x aspect category (sentence level, ``feedback_aspects``): mentions,
  negative, negative_share, items;
- ``v_feedback`` (and the views on it) is recreated so that on PostgreSQL it carries the columns
  the merged revisions added to ``feedback`` (a view's ``f.*`` is fixed when it is created), and
  ``v_daily_sentiment`` gains ``mean_score``, the mean of the analyzer's score (0003).

Revision ID: 0007_views
Revises: 0003_enrichment, 0004_tickets, 0006_analytics
Create Date: 2026-11-22
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0007_views"
down_revision = ("0003_enrichment", "0004_tickets", "0006_analytics")
branch_labels = None
depends_on = None



def _load_0006() -> ModuleType:
    """The view definitions of revision 0006 (revision files are loaded by path, not as a package)."""
    spec = importlib.util.spec_from_file_location("_rev_0006_analytics", Path(__file__).with_name("0006_analytics.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_spine = _load_0006()

V_CSAT_BY_GROUP = """
CREATE VIEW v_csat_by_group AS
SELECT COALESCE(t.group_name, '(no group)') AS group_name,
       COUNT(*) AS rated_tickets,
       SUM(CASE WHEN t.csat_score >= 4 THEN 1 ELSE 0 END) AS satisfied,
       CAST(100 * SUM(CASE WHEN t.csat_score >= 4 THEN 1 ELSE 0 END) AS FLOAT) / COUNT(*) AS csat_pct,
       AVG(CAST(t.csat_score AS FLOAT)) AS csat_mean
FROM tickets t
WHERE t.csat_score IS NOT NULL
GROUP BY COALESCE(t.group_name, '(no group)')
"""

V_TOP_NEGATIVE_ASPECTS = """
CREATE VIEW v_top_negative_aspects AS
SELECT f.event_month AS event_month, a.category AS category,
       COUNT(*) AS mentions,
       SUM(CASE WHEN a.label = 'negative' THEN 1 ELSE 0 END) AS negative,
       CAST(SUM(CASE WHEN a.label = 'negative' THEN 1 ELSE 0 END) AS FLOAT)
           / NULLIF(SUM(CASE WHEN a.label <> 'not_assessed' THEN 1 ELSE 0 END), 0) AS negative_share,
       COUNT(DISTINCT a.feedback_id) AS items
FROM (SELECT feedback_id, category, sentiment_label AS label FROM feedback_aspects) a
JOIN v_feedback f ON f.feedback_id = a.feedback_id
GROUP BY f.event_month, a.category
"""

OWN_VIEWS = ("v_top_negative_aspects", "v_csat_by_group")


#: ``v_daily_sentiment`` with the analyzer's ``mean_score`` (``feedback.sentiment_score``, from 0003).
V_DAILY_SENTIMENT = _spine.V_DAILY_SENTIMENT.replace(
    "AS mean_polarity\n",
    "AS mean_polarity,\n"
    "       AVG(CASE WHEN f.sentiment_label <> 'not_assessed' THEN f.sentiment_score END) AS mean_score\n")


def _recreate_feedback_views(daily: str) -> None:
    for view in _spine.VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    dialect = op.get_bind().dialect.name
    op.execute(_spine.v_feedback_sql(dialect))
    age = _spine.DATE_KEYS["postgresql" if dialect == "postgresql" else "sqlite"][2]
    op.execute(daily.format(age=age))
    op.execute(_spine.V_WEEKLY_NPS)
    op.execute(_spine.V_CSAT_BY_CATEGORY)


def upgrade() -> None:
    _recreate_feedback_views(V_DAILY_SENTIMENT)
    op.execute(V_CSAT_BY_GROUP)
    op.execute(V_TOP_NEGATIVE_ASPECTS)


def downgrade() -> None:
    for view in OWN_VIEWS:
        op.execute(f"DROP VIEW IF EXISTS {view}")
    _recreate_feedback_views(_spine.V_DAILY_SENTIMENT)
