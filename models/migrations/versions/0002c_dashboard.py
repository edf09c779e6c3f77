"""dashboard: voicemail notes, follow-ups, wrap-up notes

Revision ID: 0002c_dashboard
Revises: 0001
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002c_dashboard"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the dashboard's tables."""
    op.create_table(
        "voicemail_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("voicemail_id", sa.Integer(), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("body_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["voicemail_id"], ["voicemails.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_voicemail_notes_voicemail_id", "voicemail_notes", ["voicemail_id"])
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("voicemail_id", sa.Integer(), nullable=True),
        sa.Column("peer_id", sa.Integer(), nullable=False),
        sa.Column("assigned_by_id", sa.Integer(), nullable=True),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["voicemail_id"], ["voicemails.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["peer_id"], ["peers.id"]),
        sa.ForeignKeyConstraint(["assigned_by_id"], ["staff_users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_follow_ups_voicemail_id", "follow_ups", ["voicemail_id"])
    op.create_index("ix_follow_ups_peer_id", "follow_ups", ["peer_id"])
    op.create_table(
        "wrap_up_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("peer_id", sa.Integer(), nullable=False),
        sa.Column("body_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["peer_id"], ["peers.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_wrap_up_notes_call_id", "wrap_up_notes", ["call_id"])
    op.create_index("ix_wrap_up_notes_peer_id", "wrap_up_notes", ["peer_id"])


def downgrade() -> None:
    """Drop the dashboard's tables."""
    op.drop_table("wrap_up_notes")
    op.drop_table("follow_ups")
    op.drop_table("voicemail_notes")
