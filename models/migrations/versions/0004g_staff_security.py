"""staff security: a per-user session version, a keyed hash chain on the audit log, and (on
PostgreSQL) a trigger that refuses any UPDATE, DELETE or TRUNCATE of the audit log

Revision ID: 0004g_staff_security
Revises: 0003f_callbacks
Create Date: 2026-11-26
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004g_staff_security"
down_revision = "0003f_callbacks"
branch_labels = None
depends_on = None

# The database itself refuses to change the audit log, whoever connects (the app's guard
# covers only its own ORM sessions). SQLite has no roles or server: nothing to add there.
APPEND_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""
ROW_TRIGGER = ("CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
               "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()")
TRUNCATE_TRIGGER = ("CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
                    "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()")


def upgrade() -> None:
    """Add staff_users.session_version and audit_log.chain_hash; on PostgreSQL, the append-only trigger."""
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.add_column(sa.Column("session_version", sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.add_column(sa.Column("chain_hash", sa.String(length=64), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        op.execute(ROW_TRIGGER)
        op.execute(TRUNCATE_TRIGGER)


def downgrade() -> None:
    """Remove the trigger and the columns."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS audit_log_append_only()")
    with op.batch_alter_table("audit_log") as batch_op:
        batch_op.drop_column("chain_hash")
    with op.batch_alter_table("staff_users") as batch_op:
        batch_op.drop_column("session_version")
