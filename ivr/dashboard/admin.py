"""The audit log for admins: who did what, when, filterable; nothing here changes it."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone, tzinfo

from flask import render_template, request
from sqlalchemy import select

from ivr.dashboard.core import admin_required, bp
from ivr.db import get_session
from ivr.services import services
from models import AuditEntry, StaffUser

PAGE_SIZE = 100


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _local_midnight(day: date, zone: tzinfo) -> datetime:
    """The moment ``day`` starts in the line's time zone, in UTC (as the audit times are stored)."""
    return datetime.combine(day, time.min, zone).astimezone(timezone.utc)


@bp.get("/audit")
@admin_required
def audit_log() -> str:
    """Audit entries, newest first, filtered by person, action, target and dates."""
    db = get_session()
    args = request.args
    stmt = select(AuditEntry)
    user_id = args.get("user", type=int)
    if user_id:
        stmt = stmt.where(AuditEntry.staff_user_id == user_id)
    if args.get("action"):
        stmt = stmt.where(AuditEntry.action == args["action"])
    if args.get("target_type"):
        stmt = stmt.where(AuditEntry.target_type == args["target_type"])
    if args.get("target_id", type=int):
        stmt = stmt.where(AuditEntry.target_id == args.get("target_id", type=int))
    since, until = _day(args.get("since")), _day(args.get("until"))
    # The dates are days in LINE_TIMEZONE, as the table shows the times: local midnights, in UTC.
    zone = services().settings.zone
    if since:
        stmt = stmt.where(AuditEntry.at >= _local_midnight(since, zone))
    if until:
        stmt = stmt.where(AuditEntry.at < _local_midnight(until + timedelta(days=1), zone))
    page = max(1, args.get("page", 1, type=int))
    entries = db.scalars(stmt.order_by(AuditEntry.id.desc()).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
    users = db.scalars(select(StaffUser).order_by(StaffUser.username)).all()
    actions = db.scalars(select(AuditEntry.action).distinct().order_by(AuditEntry.action)).all()
    targets = db.scalars(select(AuditEntry.target_type).where(AuditEntry.target_type.is_not(None)).distinct()
                        .order_by(AuditEntry.target_type)).all()
    return render_template("staff/audit.html", entries=entries[:PAGE_SIZE], has_more=len(entries) > PAGE_SIZE,
                           page=page, users=users, usernames={u.id: u.username for u in users},
                           actions=actions, targets=targets, filters=args)
