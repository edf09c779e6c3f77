"""operations: open hours, holidays, closures, caller plans and blocks, call records, shifts

Revision ID: 0004e_operations
Revises: 0003f_callbacks
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004e_operations"
down_revision = "0003f_callbacks"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables of models.operations."""
    op.create_table(
        "open_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("opens_minute", sa.Integer(), nullable=False),
        sa.Column("closes_minute", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_open_hours_weekday", "open_hours", ["weekday"])
    op.create_table(
        "holidays",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day"),
    )
    op.create_table(
        "closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=True),
        sa.Column("started_by_id", sa.Integer(), sa.ForeignKey("staff_users.id"), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), sa.ForeignKey("staff_users.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_closures_started_at", "closures", ["started_at"])
    op.create_table(
        "caller_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller_id", sa.Integer(), sa.ForeignKey("callers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("plan_encrypted", sa.LargeBinary(), nullable=True),
        sa.Column("daily_limit", sa.Integer(), nullable=True),
        sa.Column("updated_at", TZ, nullable=False),
        sa.Column("updated_by_id", sa.Integer(), sa.ForeignKey("staff_users.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("caller_id"),
    )
    op.create_table(
        "caller_blocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller_id", sa.Integer(), sa.ForeignKey("callers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("reason_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("lifted_at", TZ, nullable=True),
        sa.Column("created_by_id", sa.Integer(), sa.ForeignKey("staff_users.id"), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_caller_blocks_caller_id", "caller_blocks", ["caller_id"])
    op.create_index("ix_caller_blocks_expires_at", "caller_blocks", ["expires_at"])
    op.create_table(
        "call_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), sa.ForeignKey("calls.id", ondelete="CASCADE"), nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("referral", sa.Boolean(), nullable=True),
        sa.Column("risk", sa.String(length=20), nullable=True),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "peer_id", name="uq_call_records_call_peer"),
    )
    op.create_index("ix_call_records_call_id", "call_records", ["call_id"])
    op.create_index("ix_call_records_peer_id", "call_records", ["peer_id"])
    op.create_index("ix_call_records_created_at", "call_records", ["created_at"])
    op.create_table(
        "shift_templates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("start_minute", sa.Integer(), nullable=False),
        sa.Column("end_minute", sa.Integer(), nullable=False),
        sa.Column("peers_needed", sa.Integer(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("on_call", sa.Boolean(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), sa.ForeignKey("shift_templates.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("starts_at", TZ, nullable=False),
        sa.Column("ends_at", TZ, nullable=False),
        sa.Column("peers_needed", sa.Integer(), nullable=False),
        sa.Column("languages", sa.JSON(), nullable=False),
        sa.Column("on_call", sa.Boolean(), nullable=False),
        sa.Column("alerted_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("template_id", "starts_at", name="uq_shifts_template_start"),
    )
    op.create_index("ix_shifts_starts_at", "shifts", ["starts_at"])
    op.create_table(
        "shift_signups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("shift_id", sa.Integer(), sa.ForeignKey("shifts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("peer_id", sa.Integer(), sa.ForeignKey("peers.id"), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("shift_id", "peer_id", name="uq_shift_signups_shift_peer"),
    )
    op.create_index("ix_shift_signups_shift_id", "shift_signups", ["shift_id"])
    op.create_index("ix_shift_signups_peer_id", "shift_signups", ["peer_id"])
    op.create_table(
        "shift_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("max_shifts_per_week", sa.Integer(), nullable=False),
        sa.Column("drop_notice_hours", sa.Integer(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    """Drop the tables of models.operations."""
    for table in ("shift_rules", "shift_signups", "shifts", "shift_templates", "call_records", "caller_blocks",
                  "caller_plans", "closures", "holidays", "open_hours"):
        op.drop_table(table)
