"""callback line index: pending callbacks in arrival order, so dispatch reads one page, not the whole line

Revision ID: 0005h4_callback_line_index
Revises: 0004a_peer_repair
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op

revision = "0005h4_callback_line_index"
down_revision = "0004a_peer_repair"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Index callback_requests on (status, arrived_at, id): the order in which dispatch offers them."""
    op.create_index("ix_callback_requests_line", "callback_requests", ["status", "arrived_at", "id"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_callback_requests_line", table_name="callback_requests")
