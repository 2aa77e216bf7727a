"""The state store's table ``source_state`` (pipeline/state.py), with the e-mail checkpoints moved in.

Every polling source keeps its cursors there (namespace, key -> a JSON object). The e-mail
connector's rows of ``email_checkpoints`` are copied as namespace ``email:<account>``, key ``<folder>``,
value ``{"uidvalidity", "last_uid"}``, so the connector resumes where it was. The old table is left
in place (a downgrade returns to it; the connector no longer writes it). The table may already exist:
a source that starts before the warehouse is migrated creates it itself (``SqlStateStore.setup``).

Revision ID: 0011_state
Revises: 0007_views
Create Date: 2026-12-07
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0011_state"
down_revision = "0007_views"
branch_labels = None
depends_on = None  # 0002_email is its own head: where it is not applied yet there is nothing to copy


def upgrade() -> None:
    bind = op.get_bind()
    if not sa.inspect(bind).has_table("source_state"):
        op.create_table(
            "source_state",
            sa.Column("namespace", sa.String(300), primary_key=True),
            sa.Column("key", sa.String(500), primary_key=True),
            sa.Column("value", sa.Text(), nullable=False),
            sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        )
    if not sa.inspect(bind).has_table("email_checkpoints"):
        return
    state = sa.table("source_state", sa.column("namespace", sa.String), sa.column("key", sa.String),
                     sa.column("value", sa.Text), sa.column("updated_at", sa.DateTime(timezone=True)))
    present = {(n, k) for n, k in bind.execute(sa.select(state.c.namespace, state.c.key))}
    rows = []
    email = sa.table("email_checkpoints", sa.column("account", sa.String), sa.column("folder", sa.String),
                     sa.column("uidvalidity", sa.BigInteger), sa.column("last_uid", sa.BigInteger),
                     sa.column("updated_at", sa.DateTime(timezone=True)))
    for account, folder, uidvalidity, last_uid, updated_at in bind.execute(sa.select(
            email.c.account, email.c.folder, email.c.uidvalidity, email.c.last_uid, email.c.updated_at)):
        namespace = f"email:{account}"
        if (namespace, folder) in present:
            continue
        rows.append({"namespace": namespace, "key": folder,
                     "value": json.dumps({"last_uid": int(last_uid), "uidvalidity": int(uidvalidity)}, sort_keys=True),
                     "updated_at": updated_at or datetime.now(UTC)})
    if rows:
        op.bulk_insert(state, rows)


def downgrade() -> None:
    op.drop_table("source_state")
