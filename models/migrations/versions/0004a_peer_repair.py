"""peer repair: the peer's own call with the line, missed offers in a row, the automatic break

Revision ID: 0004a_peer_repair
Revises: 0003f_callbacks
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004a_peer_repair"
down_revision = "0003f_callbacks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the peers' sign-on call, missed offers and automatic break columns."""
    with op.batch_alter_table("peers") as batch_op:
        batch_op.add_column(sa.Column("line_call_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("missed_offers", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("auto_break_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop them."""
    with op.batch_alter_table("peers") as batch_op:
        batch_op.drop_column("auto_break_at")
        batch_op.drop_column("missed_offers")
        batch_op.drop_column("line_call_sid")
