"""live peer routing: peer requests and ringing legs

Revision ID: 0002e_routing
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002e_routing"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create peer_requests and ring_legs."""
    op.create_table(
        "peer_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("calls.id"), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("wanted_tag", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=True),
        sa.Column("hold_plays", sa.Integer(), nullable=False),
        sa.Column("arrived_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("connected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("peer_requests") as batch_op:
        batch_op.create_index("ix_peer_requests_call_sid", ["call_sid"])
        batch_op.create_index("ix_peer_requests_status", ["status"])
        batch_op.create_index("ix_peer_requests_arrived_at", ["arrived_at"])
    op.create_table(
        "ring_legs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("peer_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_sid"),
    )
    with op.batch_alter_table("ring_legs") as batch_op:
        batch_op.create_index("ix_ring_legs_request_id", ["request_id"])
        batch_op.create_index("ix_ring_legs_peer_id", ["peer_id"])
        batch_op.create_index("ix_ring_legs_status", ["status"])


def downgrade() -> None:
    """Drop the routing tables."""
    op.drop_table("ring_legs")
    op.drop_table("peer_requests")
