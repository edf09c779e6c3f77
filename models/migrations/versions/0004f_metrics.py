"""metrics: each peer status change (occupancy, after-call work) and the caller survey's answers

Revision ID: 0004f_metrics
Revises: 0003f_callbacks
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004f_metrics"
down_revision = "0003f_callbacks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create peer_status_changes and survey_answers."""
    op.create_table(
        "peer_status_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("peer_status_changes") as batch_op:
        batch_op.create_index("ix_peer_status_changes_peer_id", ["peer_id"])
        batch_op.create_index("ix_peer_status_changes_at", ["at"])
    op.create_table(
        "survey_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("respondent", sa.String(length=32), nullable=False),
        sa.Column("response", sa.String(length=32), nullable=False),
        sa.Column("question", sa.String(length=32), nullable=False),
        sa.Column("answer", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("response", "question", name="uq_survey_answers_response_question"),
    )
    with op.batch_alter_table("survey_answers") as batch_op:
        batch_op.create_index("ix_survey_answers_respondent", ["respondent"])
        batch_op.create_index("ix_survey_answers_at", ["at"])


def downgrade() -> None:
    """Drop the two tables."""
    op.drop_table("survey_answers")
    op.drop_table("peer_status_changes")
