"""callbacks: the safe window, due time and attempts of a callback request, and each attempt

Revision ID: 0003f_callbacks
Revises: 0002e_routing
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003f_callbacks"
down_revision = "0002e_routing"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add callback scheduling columns and the callback_attempts table."""
    with op.batch_alter_table("callback_requests") as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("not_after", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("peer_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("call_sid", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("outcome", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key("fk_callback_requests_peer_id", "peers", ["peer_id"], ["id"])
        batch_op.create_index("ix_callback_requests_due_at", ["due_at"])
        batch_op.create_index("ix_callback_requests_call_sid", ["call_sid"])
    op.create_table(
        "callback_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("callback_id", sa.Integer(), sa.ForeignKey("callback_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=True),
        sa.Column("stage", sa.String(length=20), nullable=False),
        sa.Column("peer_call_sid", sa.String(length=64), nullable=True),
        sa.Column("caller_call_sid", sa.String(length=64), nullable=True),
        sa.Column("answered_by", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("peer_call_sid"),
        sa.UniqueConstraint("caller_call_sid"),
    )
    with op.batch_alter_table("callback_attempts") as batch_op:
        batch_op.create_index("ix_callback_attempts_callback_id", ["callback_id"])
        batch_op.create_index("ix_callback_attempts_peer_id", ["peer_id"])
        batch_op.create_index("ix_callback_attempts_stage", ["stage"])


def downgrade() -> None:
    """Drop the callback attempts table and the scheduling columns."""
    op.drop_table("callback_attempts")
    with op.batch_alter_table("callback_requests") as batch_op:
        batch_op.drop_index("ix_callback_requests_call_sid")
        batch_op.drop_index("ix_callback_requests_due_at")
        batch_op.drop_constraint("fk_callback_requests_peer_id", type_="foreignkey")
        for column in ("updated_at", "outcome", "call_sid", "peer_id", "attempts", "due_at", "not_after",
                       "not_before"):
            batch_op.drop_column(column)
