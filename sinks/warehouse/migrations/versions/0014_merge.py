"""Merges the branches of this release into one head, and recreates the ``v_feedback`` family of views.

On PostgreSQL a view's ``f.*`` is fixed when the view is created, so ``v_feedback`` (and the views built
on it) would not show the columns the merged revisions added to ``feedback``: ``sentiment_model``
(0009), ``origin`` (0010). They are recreated here with the definitions of 0006/0007. One head also
means ``migrate`` leaves every warehouse at exactly one revision, whatever branch it came from.

Revision ID: 0014_merge
Revises: 0002_email, 0008_incidents, 0009_models, 0010_trust, 0011_state, 0012_score_only,
         0013_followups
Create Date: 2026-12-07
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from alembic import op

revision = "0014_merge"
down_revision = ("0002_email", "0008_incidents", "0009_models", "0010_trust", "0011_state",
                 "0012_score_only", "0013_followups")
branch_labels = None
depends_on = None


def _load(name: str) -> ModuleType:
    """A sibling revision's module (revision files are loaded by path, not as a package)."""
    spec = importlib.util.spec_from_file_location(f"_rev_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_views = _load("0007_analytics_views")


def _recreate() -> None:
    for view in _views.OWN_VIEWS:  # v_top_negative_aspects reads v_feedback: it goes first
        op.execute(f"DROP VIEW IF EXISTS {view}")
    _views.upgrade()


def upgrade() -> None:
    _recreate()


def downgrade() -> None:
    _recreate()
