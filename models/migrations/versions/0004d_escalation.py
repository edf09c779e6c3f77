"""escalation: hand-offs to the crisis line or a supervisor, monitor sessions, trainees, staff phones

Revision ID: 0004d_escalation
Revises: 0003f_callbacks
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004d_escalation"
down_revision = "0003f_callbacks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create handoffs and monitor_sessions; add peers.trainee and staff_users.phone_encrypted."""
    with op.batch_alter_table("peers") as batch_op:
        batch_op.add_column(sa.Column("trainee", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.add_column(sa.Column("phone_encrypted", sa.LargeBinary(), nullable=True))
    op.create_table(
        "handoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("peer_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("handoffs") as batch_op:
        batch_op.create_index("ix_handoffs_request_id", ["request_id"])
        batch_op.create_index("ix_handoffs_status", ["status"])
        batch_op.create_index("ix_handoffs_call_sid", ["call_sid"])
    op.create_table(
        "monitor_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), sa.ForeignKey("peer_requests.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("staff_user_id", sa.Integer(), sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("trainee_peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=True),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("monitor_sessions") as batch_op:
        batch_op.create_index("ix_monitor_sessions_request_id", ["request_id"])
        batch_op.create_index("ix_monitor_sessions_peer_id", ["peer_id"])
        batch_op.create_index("ix_monitor_sessions_status", ["status"])
        batch_op.create_index("ix_monitor_sessions_call_sid", ["call_sid"])


def downgrade() -> None:
    """Drop the escalation tables and columns."""
    op.drop_table("monitor_sessions")
    op.drop_table("handoffs")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.drop_column("phone_encrypted")
    with op.batch_alter_table("peers") as batch_op:
        batch_op.drop_column("trainee")
