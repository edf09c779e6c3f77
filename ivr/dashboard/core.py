"""Shared pieces of the staff pages: the blueprint, the signed-in user, role checks, audit."""
from __future__ import annotations

import functools
import time
from typing import Any, Callable, TypeVar

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, session
from flask_login import UserMixin, current_user
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import event, inspect, text
from sqlalchemy.orm import Session

from callflows.times import aware  # noqa: F401  (the staff pages use it from here)
from ivr.db import get_session
from ivr.errors import AuditLogError  # raised here; tests and callers may import it from here too
from ivr.services import services
from ivr.dashboard.speech import DEMO_MARK
from models import AuditEntry, StaffUser, utcnow
from models.audit import chain_key, last_chain_hash, link
from models.tables import SUPERVISOR_ROLES

bp = Blueprint("staff", __name__, url_prefix="/staff")

F = TypeVar("F", bound=Callable[..., Any])
PEER_STATUS_LABELS = {
    "available": "Available",
    "busy": "On a call",
    "wrap_up": "Wrapping up",
    "break": "On a break",
    "signed_off": "Signed off",
}


class StaffLogin(UserMixin):
    """The signed-in staff member as Flask-Login sees it (plain values, no ORM object)."""

    def __init__(self, user: StaffUser) -> None:
        self.id = user.id
        self.username = user.username
        self.role = user.role
        self.peer_id = user.peer_id

    @property
    def is_supervisor(self) -> bool:
        """Admins and supervisors see the supervisor pages."""
        return self.role in SUPERVISOR_ROLES

    @property
    def is_admin(self) -> bool:
        """Only admins see the audit log."""
        return self.role == "admin"


SESSION_VERSION_KEY = "staff_sv"
SIGNED_IN_AT_KEY = "staff_signed_in_at"


def start_staff_session(user: StaffUser) -> None:
    """Mark the session with the user's session version and the sign-in time (checked on each request)."""
    session[SESSION_VERSION_KEY] = user.session_version or 0
    session[SIGNED_IN_AT_KEY] = int(time.time())


def load_user(user_id: str) -> StaffLogin | None:
    """Flask-Login user loader: an active staff login whose session is neither revoked nor too old, or None."""
    try:
        ident = int(user_id)
    except ValueError:
        return None
    user = get_session().get(StaffUser, ident)
    if user is None or not user.active:
        return None
    # Revoked: signed out since (anywhere). Expired: 12 hours after sign-in, however busy the
    # session was since (Flask renews the cookie's own expiry on every request).
    signed_in_at = session.get(SIGNED_IN_AT_KEY)
    max_age = current_app.config["PERMANENT_SESSION_LIFETIME"].total_seconds()
    if session.get(SESSION_VERSION_KEY) != (user.session_version or 0) or not isinstance(signed_in_at, int) \
            or time.time() - signed_in_at > max_age:
        session.clear()
        return None
    return StaffLogin(user)


def roles_required(*roles: str) -> Callable[[F], F]:
    """Let only signed-in users with one of ``roles`` in; others get sign-in or 403."""

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped  # type: ignore[return-value]

    return decorator


supervisor_required = roles_required(*SUPERVISOR_ROLES)
admin_required = roles_required("admin")


def peer_required(view: F) -> F:
    """Let in signed-in staff whose login belongs to a peer."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        if current_user.peer_id is None:
            abort(403)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def audit(action: str, target_type: str | None = None, target_id: int | None = None,
          detail: str | None = None, user_id: int | None = None) -> None:
    """Add an audit entry to the request's session (committed with the action it records)."""
    if user_id is None and current_user.is_authenticated:
        user_id = current_user.id
    get_session().add(AuditEntry(staff_user_id=user_id, action=action, target_type=target_type,
                                 target_id=target_id, detail=(detail or None) and detail[:500]))


@bp.before_request
def _check_csrf() -> None:
    """Every state-changing request to the staff pages needs a valid CSRF token."""
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        csrf: CSRFProtect = current_app.extensions["csrf"]
        csrf.protect()


# PostgreSQL refuses NUL in text ("A string literal cannot contain NUL"): an entry pasted with one
# would fail deep in a page's commit with a 500. No text a person types needs it, so it is refused
# here, for every staff form and query, before any page reads them.
NUL_MESSAGE = ("What you sent contains an invisible NUL character (it can come with pasted text), "
               "which cannot be saved. Nothing was changed. Go back, remove or retype that text, and send it again.")


@bp.before_request
def _refuse_nul() -> tuple[str, int] | None:
    """Refuse a staff request whose form or query holds a NUL character, with a page that says so."""
    fields = (*request.args.items(multi=True), *request.form.items(multi=True))
    if not any("\x00" in name or "\x00" in value for name, value in fields):
        return None
    return render_template("staff/error.html", code=400, title="Character not allowed", message=NUL_MESSAGE), 400


@bp.after_app_request
def _security_headers(response: Response) -> Response:
    """Staff pages hold sensitive data: never cached, never framed, scripts only from us; over
    https, HSTS. Every response under /staff gets them, error pages and unknown paths included."""
    if not (request.path == "/staff" or request.path.startswith("/staff/")):
        return response
    if request.is_secure or services().settings.public_base_url.startswith("https://"):
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; form-action 'self'"
    )
    return response


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"status_labels": PEER_STATUS_LABELS, "demo_mark": DEMO_MARK}


# One lock for every writer of the audit log, held to the end of its transaction, so two
# requests never link their entries to the same predecessor (PostgreSQL; SQLite has one writer).
AUDIT_CHAIN_LOCK = 0x70656572  # "peer"


def install_audit_guard(app: Flask) -> None:
    """Refuse, in every session of this app, any update or delete of an audit entry, and link
    every new entry into the keyed hash chain (:mod:`models.audit`)."""
    key = chain_key(services(app).settings.secret_key)

    def before_flush(session: Session, _context: object, _instances: object) -> None:
        for obj in list(session.dirty) + list(session.deleted):
            if isinstance(obj, AuditEntry) and (obj in session.deleted or session.is_modified(obj)):
                raise AuditLogError("the audit log is append-only")
        new = [obj for obj in session.new if isinstance(obj, AuditEntry) and obj.chain_hash is None]
        if not new:
            return
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": AUDIT_CHAIN_LOCK})
        previous = last_chain_hash(session)
        # Rows are inserted in the order they were added to the session: link them in that order.
        for entry in sorted(new, key=lambda obj: inspect(obj).insert_order or 0):
            entry.at = entry.at or utcnow()
            entry.chain_hash = previous = link(key, previous, entry)

    event.listen(services(app).sessions, "before_flush", before_flush)
