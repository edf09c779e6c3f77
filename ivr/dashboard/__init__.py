"""The staff dashboard: sign-in, the supervisor's inbox and review pages, a peer's shift page,
the live board, failed jobs and the audit log, all server-rendered under ``/staff``.

Exceptions: :class:`ivr.errors.AuditLogError` (an :class:`ivr.errors.IvrError`, also importable
from :mod:`ivr.dashboard.core`) is raised when code tries to change or delete an audit entry
(the log is append-only from the app).
"""
from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

# The view modules add their routes to the one staff blueprint when imported. They take what
# they share from ivr.dashboard.core, never from this package's namespace, so importing them
# here makes no cycle.
from ivr.dashboard import admin, auth, errors, monitor, operations, peer, reports, stories, supervisor  # noqa: F401
from ivr.dashboard import running  # noqa: F401  (hours, callers, shifts, call records)
from ivr.dashboard import labels
from ivr.dashboard.core import bp, install_audit_guard, load_user


def init_app(app: Flask) -> None:
    """Set up Flask-Login, CSRF protection for the staff pages and the ``/staff`` blueprint."""
    # CSRF is checked by the staff blueprint itself (see core.bp.before_request): Twilio
    # POSTs to /voice and to any webhook others add, and those carry a signature, not a token.
    app.config.setdefault("WTF_CSRF_CHECK_DEFAULT", False)
    # A peer may keep the status page open on a phone for a whole shift; the token lives as
    # long as the signed-in session instead of the default hour.
    app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)
    # Flask pre-fills PERMANENT_SESSION_LIFETIME (31 days), so setdefault would keep that:
    # staff sessions last 12 hours from sign-in (STAFF_SESSION_HOURS), checked on each request.
    app.config.setdefault("STAFF_SESSION_HOURS", 12)
    app.config["PERMANENT_SESSION_LIFETIME"] = timedelta(hours=app.config["STAFF_SESSION_HOURS"])
    app.config.setdefault("REMEMBER_COOKIE_HTTPONLY", True)
    app.config.setdefault("REMEMBER_COOKIE_SECURE", app.config.get("SESSION_COOKIE_SECURE", False))
    app.config.setdefault("STAFF_AUDIO_URL_TTL", 600)
    app.config.setdefault("STAFF_BOARD_REFRESH_S", 15)  # how often the live board fetches its lists
    app.config.setdefault("STAFF_MAX_FAILED_SIGN_INS", 5)
    app.config.setdefault("STAFF_LOCKOUT_MINUTES", 15)
    app.config.setdefault("STAFF_MAX_FAILED_SIGN_INS_PER_ADDRESS", 20)

    CSRFProtect(app)  # the app factory exempts Twilio's webhook blueprints

    login = LoginManager(app)
    login.login_view = "staff.sign_in"
    login.login_message = "Please sign in to see that page."
    login.login_message_category = "info"
    login.session_protection = "strong"
    login.user_loader(load_user)

    app.register_blueprint(bp)
    labels.init_app(app)
    install_audit_guard(app)
