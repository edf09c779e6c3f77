"""Sign-in (with a lockout after repeated failures), sign-out and the role-based home page."""
from __future__ import annotations

from datetime import timedelta

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from ivr.dashboard.core import StaffLogin, audit, aware, bp
from ivr.db import get_session
from models import StaffUser, utcnow

# Checked when the username is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def _safe_next(target: str | None) -> str | None:
    """Only follow ``next`` to our own staff pages (no open redirect)."""
    if target and target.startswith("/staff/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | str | tuple[str, int]:
    """Show the sign-in form; check the password; lock the account after repeated failures."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("staff.home"))
    if request.method == "GET":
        return render_template("staff/sign_in.html", username="", error=None)
    db = get_session()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    user = db.scalar(select(StaffUser).where(StaffUser.username == username)) if username else None
    now = utcnow()
    if user is not None and user.locked_until is not None and aware(user.locked_until) > now:  # type: ignore[operator]
        audit("sign_in_locked", "staff_user", user.id, user_id=user.id)
        db.commit()
        error = "This account is locked after too many failed sign-ins. Try again later or ask an admin."
        return render_template("staff/sign_in.html", username=username, error=error), 423
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or not user.active:
        if user is not None:
            user.failed_logins = (user.failed_logins or 0) + 1
            audit("sign_in_failed", "staff_user", user.id, user_id=user.id)
            if user.failed_logins >= current_app.config["STAFF_MAX_FAILED_SIGN_INS"]:
                user.locked_until = now + timedelta(minutes=current_app.config["STAFF_LOCKOUT_MINUTES"])
                user.failed_logins = 0
                audit("account_locked", "staff_user", user.id, user_id=user.id)
            db.commit()
        return render_template("staff/sign_in.html", username=username,
                               error="That username and password do not match an active account."), 401
    user.failed_logins = 0
    user.locked_until = None
    # A fresh session on sign-in, so a session id planted before sign-in is worthless.
    session.clear()
    login_user(StaffLogin(user))
    session.permanent = True
    audit("sign_in", "staff_user", user.id, user_id=user.id)
    db.commit()
    return redirect(_safe_next(request.args.get("next")) or url_for("staff.home"))


@bp.post("/sign-out")
@login_required
def sign_out() -> Response:
    """Sign out and forget the session."""
    audit("sign_out", "staff_user", current_user.id)
    get_session().commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("staff.sign_in"))


@bp.get("/")
@login_required
def home() -> Response:
    """Send each role to its own first page."""
    if current_user.is_supervisor:
        return redirect(url_for("staff.inbox"))
    if current_user.peer_id is not None:
        return redirect(url_for("staff.my_shift"))
    return redirect(url_for("staff.no_role"))


@bp.get("/no-access")
@login_required
def no_role() -> str:
    """A peer login that is not linked to a peer has nothing to show yet."""
    return render_template("staff/no_role.html")
