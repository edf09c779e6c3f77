"""callback in-call help: hand-offs and monitor sessions of a callback's room, when the caller met the peer

Revision ID: 0005c_callback_in_call_help
Revises: 0004d_escalation
Create Date: 2026-11-27
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005c_callback_in_call_help"
down_revision = "0004d_escalation"
branch_labels = None
depends_on = None

# A hand-off or a listener belongs to exactly one room: a live call's request, or a callback attempt's.
ONE_ROOM = "(request_id IS NULL) <> (callback_attempt_id IS NULL)"


def upgrade() -> None:
    """handoffs and monitor_sessions: request_id nullable, callback_attempt_id added, exactly one set;
    callback_attempts: when the caller was put in the room with the peer, when the peer stepped out."""
    for table in ("handoffs", "monitor_sessions"):
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("request_id", existing_type=sa.Integer(), nullable=True)
            batch_op.add_column(sa.Column("callback_attempt_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(f"fk_{table}_callback_attempt_id", "callback_attempts",
                                        ["callback_attempt_id"], ["id"], ondelete="CASCADE")
            batch_op.create_index(f"ix_{table}_callback_attempt_id", ["callback_attempt_id"])
            batch_op.create_check_constraint(f"ck_{table}_one_room", ONE_ROOM)
    with op.batch_alter_table("callback_attempts") as batch_op:
        batch_op.add_column(sa.Column("caller_joined_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("peer_stepped_out_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop them (a callback's hand-offs and sessions go: request_id cannot hold them)."""
    with op.batch_alter_table("callback_attempts") as batch_op:
        batch_op.drop_column("peer_stepped_out_at")
        batch_op.drop_column("caller_joined_at")
    for table in ("monitor_sessions", "handoffs"):
        op.execute(sa.text(f"DELETE FROM {table} WHERE request_id IS NULL"))
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"ck_{table}_one_room", type_="check")
            batch_op.drop_index(f"ix_{table}_callback_attempt_id")
            batch_op.drop_constraint(f"fk_{table}_callback_attempt_id", type_="foreignkey")
            batch_op.drop_column("callback_attempt_id")
            batch_op.alter_column("request_id", existing_type=sa.Integer(), nullable=False)
