"""transcription: voicemail no-speech flag and supervisor notification time

Revision ID: 0002a_transcription
Revises: 0001
Create Date: 2026-11-25
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002a_transcription"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns the transcription job writes."""
    with op.batch_alter_table("voicemails") as batch_op:
        batch_op.add_column(sa.Column("no_speech", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop them again."""
    with op.batch_alter_table("voicemails") as batch_op:
        batch_op.drop_column("notified_at")
        batch_op.drop_column("no_speech")
