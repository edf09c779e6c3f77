"""Sign-in (with a lockout after repeated failures), sign-out and the role-based home page."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from werkzeug.wrappers import Response

from ivr.dashboard import throttle
from ivr.dashboard.core import StaffLogin, audit, aware, bp, start_staff_session
from ivr.db import get_session
from models import StaffUser, utcnow

# Checked when the username is unknown, so a wrong name takes as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


def _safe_next(target: str | None) -> str | None:
    """Only follow ``next`` to our own staff pages (no open redirect, no header injection)."""
    if not target or not target.startswith("/staff/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):  # CR/LF would split the Location header
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


# One answer for a wrong password, an unknown user, a locked account and a throttled address,
# so the answer never tells which user names exist.
REFUSED = ("That username and password do not match an active account, or sign-in is paused for a while "
           "after too many failed attempts. Try again later or ask an admin.")


def _refuse(username: str) -> tuple[str, int]:
    return render_template("staff/sign_in.html", username=username, error=REFUSED), 401


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in() -> Response | str | tuple[str, int]:
    """Show the sign-in form; check the password; throttle failures per account and per address."""
    if current_user.is_authenticated and request.method == "GET":
        return redirect(url_for("staff.home"))
    if request.method == "GET":
        return render_template("staff/sign_in.html", username="", error=None)
    db = get_session()
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    user = db.scalar(select(StaffUser).where(StaffUser.username == username)) if username else None
    now = utcnow()
    # The hash is always checked, so every refusal takes as long as a wrong password.
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if throttle.address_blocked():
        throttle.count_failure()
        audit("sign_in_throttled", "staff_user", user.id if user else None, detail=f"address {request.remote_addr}",
              user_id=user.id if user else None)
        db.commit()
        return _refuse(username)
    if user is not None and user.locked_until is not None and aware(user.locked_until) > now:  # type: ignore[operator]
        throttle.count_failure()
        audit("sign_in_locked", "staff_user", user.id, user_id=user.id)
        db.commit()
        return _refuse(username)
    if user is None or not ok or not user.active:
        throttle.count_failure()
        if user is not None:
            user.failed_logins = (user.failed_logins or 0) + 1
            audit("sign_in_failed", "staff_user", user.id, user_id=user.id)
            if user.failed_logins >= current_app.config["STAFF_MAX_FAILED_SIGN_INS"]:
                user.locked_until = now + timedelta(minutes=current_app.config["STAFF_LOCKOUT_MINUTES"])
                user.failed_logins = 0
                audit("account_locked", "staff_user", user.id, user_id=user.id)
        else:
            audit("sign_in_failed", detail=f"unknown user name from address {request.remote_addr}")
        db.commit()
        return _refuse(username)
    user.failed_logins = 0
    user.locked_until = None
    # A fresh session on sign-in, so a session id planted before sign-in is worthless.
    session.clear()
    login_user(StaffLogin(user))
    session.permanent = True
    start_staff_session(user)
    audit("sign_in", "staff_user", user.id, user_id=user.id)
    db.commit()
    return redirect(_safe_next(request.args.get("next")) or url_for("staff.home"))


@bp.post("/sign-out")
@login_required
def sign_out() -> Response:
    """Sign out: revoke every session of this login on the server, then forget this one."""
    db = get_session()
    user = db.get(StaffUser, current_user.id)
    if user is not None:
        user.session_version = (user.session_version or 0) + 1  # copies of the cookie stop working too
    audit("sign_out", "staff_user", current_user.id)
    db.commit()
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
