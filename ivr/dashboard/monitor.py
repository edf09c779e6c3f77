"""The supervisor's tools on the live board: Listen, Coach or Join a live call from their own phone,
add a trainee to shadow it, and change or end a session (rules in :mod:`callflows.escalation`).

The joining leg always starts muted; every session is in the audit log (who, which call, mode,
start, end: the rules write the start and the end, this module each change). The supervisor's
phone comes from their staff profile, or from the form (then saved, encrypted, on their
profile); it is dialled from the line's number and never shown to a caller.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from flask import abort, flash, redirect, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows import escalation, rooms
from callflows.rooms import Room
from ivr.dashboard.core import audit, bp, supervisor_required
from ivr.db import get_session
from ivr.services import services
from models import MonitorSession, Peer, StaffUser, utcnow
from models.crypto import normalize_number
from models.tables import CallbackAttempt, PeerRequest

_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
MODES = {"listen": "Listen", "coach": "Coach", "join": "Join"}
CHANGES = {"speak": "Unmute me", "speak_to_both": "Speak to both", "coach": "Coach the peer only", "end": "End"}


@dataclass
class LiveCall:
    """One conversation on the board: the request, its peer, the hand-off state and open sessions."""

    req: PeerRequest
    peer_name: str
    waited_s: int
    handoff: str
    sessions: list[MonitorSession] = field(default_factory=list)


def live_calls(db: Session, now: datetime) -> dict[int, LiveCall]:
    """Connected calls by call id, for the board (peer pseudonym, waiting time, hand-off state, sessions)."""
    found: dict[int, LiveCall] = {}
    rows = db.execute(select(PeerRequest, Peer.display_name).join(Peer, Peer.id == PeerRequest.peer_id)
                      .where(PeerRequest.status == "connected")).all()
    for req, name in rows:
        if req.call_id is None:
            continue
        waited = int(((req.connected_at or req.arrived_at) - req.arrived_at).total_seconds())
        sessions = list(db.scalars(select(MonitorSession).where(MonitorSession.request_id == req.id,
                                                                MonitorSession.status.in_(escalation.OPEN_MONITORS))
                                   .order_by(MonitorSession.id)))
        found[req.call_id] = LiveCall(req, name, max(0, waited), escalation.handoff_state(db, req), sessions)
    return found


@dataclass
class LiveCallback:
    """A callback call on the board: the caller and the peer who called them back, talking in its room."""

    attempt: CallbackAttempt
    peer_name: str
    handoff: str
    sessions: list[MonitorSession] = field(default_factory=list)


def live_callbacks(db: Session) -> dict[int, LiveCallback]:
    """Callback calls in conversation by callback id, for the board (peer pseudonym, hand-off state, sessions)."""
    found: dict[int, LiveCallback] = {}
    rows = db.execute(select(CallbackAttempt, Peer.display_name).join(Peer, Peer.id == CallbackAttempt.peer_id)
                      .where(CallbackAttempt.stage == "connected", CallbackAttempt.caller_joined_at.is_not(None),
                             CallbackAttempt.ended_at.is_(None))).all()
    for attempt, name in rows:
        room = rooms.of_attempt(db, attempt)
        if not room.talking:
            continue
        sessions = list(db.scalars(select(MonitorSession).where(rooms.in_room(MonitorSession, room),
                                                                MonitorSession.status.in_(escalation.OPEN_MONITORS))
                                   .order_by(MonitorSession.id)))
        found[attempt.callback_id] = LiveCallback(attempt, name, escalation.handoff_state(db, room), sessions)
    return found


def trainees(db: Session) -> list[Peer]:
    """Peers marked as trainees who may shadow a call now (active, not on a call of their own)."""
    return list(db.scalars(select(Peer).where(Peer.trainee.is_(True), Peer.active.is_(True),
                                              Peer.status.not_in(("busy",))).order_by(Peer.display_name)))


def _my_phone(db: Session) -> str | None:
    """The supervisor's phone: the form's (saved on their profile, encrypted), else the one on their profile."""
    user = db.get(StaffUser, current_user.id)
    if user is None:
        abort(403)
    typed = normalize_number(request.form.get("phone", "").strip()) if request.form.get("phone", "").strip() else ""
    vault = services().vault
    if typed:
        if not _PHONE.match(typed):
            return None
        user.phone_encrypted = vault.encrypt_text(typed)
        audit("staff_phone_set", "staff_user", user.id)
        return typed
    return vault.decrypt_text(user.phone_encrypted) if user.phone_encrypted else None


def _live_request(db: Session, req_id: int) -> PeerRequest:
    req = db.get(PeerRequest, req_id)
    if req is None:
        abort(404)
    return req


def _callback_room(db: Session, attempt_id: int) -> Room:
    attempt = db.get(CallbackAttempt, attempt_id)
    if attempt is None:
        abort(404)
    return rooms.of_attempt(db, attempt)


@bp.post("/board/calls/<int:req_id>/monitor")
@supervisor_required
def start_monitor(req_id: int) -> ResponseReturnValue:
    """Listen (muted), Coach (muted, then heard by the peer only) or Join (muted, then heard by both) from my phone."""
    db = get_session()
    return _start_monitor(db, _live_request(db, req_id))


@bp.post("/board/callbacks/<int:attempt_id>/monitor")
@supervisor_required
def start_callback_monitor(attempt_id: int) -> ResponseReturnValue:
    """Listen, Coach or Join a callback call (the caller called back, talking with their peer) from my phone."""
    db = get_session()
    return _start_monitor(db, _callback_room(db, attempt_id))


def _start_monitor(db: Session, req: PeerRequest | Room) -> ResponseReturnValue:
    """Start a supervisor's session on a live call or a callback call, from the form's mode and phone."""
    mode = request.form.get("mode", "")
    if mode not in MODES:
        abort(400)
    phone = _my_phone(db)
    if not phone:
        db.rollback()
        flash("Add your own phone number (digits, with the area code) to listen in.", "error")
        return redirect(url_for("staff.board"))
    try:
        escalation.start_monitor(db, services(), req, mode, phone, utcnow(), staff_user_id=current_user.id)
    except escalation.EscalationError as exc:
        flash(f"Could not start: {exc}.", "error")
        return redirect(url_for("staff.board"))
    flash(f"{MODES[mode]}: your phone is ringing. You join muted.", "success")
    return redirect(url_for("staff.board"))


@bp.post("/board/calls/<int:req_id>/trainee")
@supervisor_required
def add_trainee(req_id: int) -> ResponseReturnValue:
    """Add a trainee peer to shadow this call, muted (tandem calling)."""
    db = get_session()
    return _add_trainee(db, _live_request(db, req_id))


@bp.post("/board/callbacks/<int:attempt_id>/trainee")
@supervisor_required
def add_callback_trainee(attempt_id: int) -> ResponseReturnValue:
    """Add a trainee peer to shadow this callback call, muted."""
    db = get_session()
    return _add_trainee(db, _callback_room(db, attempt_id))


def _add_trainee(db: Session, req: PeerRequest | Room) -> ResponseReturnValue:
    """Ring the form's trainee into a live call or a callback call, muted."""
    trainee = db.get(Peer, request.form.get("trainee", type=int) or 0)
    if trainee is None or not trainee.trainee or not trainee.active or trainee.id == req.peer_id:
        flash("Choose a trainee who is not on this call.", "error")
        return redirect(url_for("staff.board"))
    phone = services().vault.decrypt_text(trainee.phone_encrypted)
    try:
        escalation.start_monitor(db, services(), req, "shadow", phone, utcnow(), staff_user_id=current_user.id,
                                 trainee=trainee)
    except escalation.EscalationError as exc:
        flash(f"Could not add the trainee: {exc}.", "error")
        return redirect(url_for("staff.board"))
    flash(f"{trainee.display_name}'s phone is ringing; they join muted.", "success")
    return redirect(url_for("staff.board"))


@bp.post("/board/monitor/<int:monitor_id>/<change>")
@supervisor_required
def change_monitor(monitor_id: int, change: str) -> ResponseReturnValue:
    """Unmute, speak to both, coach the peer only, or end a session (audit-logged)."""
    db = get_session()
    monitor = db.get(MonitorSession, monitor_id)
    if monitor is None or change not in CHANGES:
        abort(404)
    try:
        escalation.change_monitor(db, services(), monitor, change, current_user.id)
    except escalation.EscalationError as exc:
        flash(f"Could not change the session: {exc}.", "error")
        return redirect(url_for("staff.board"))
    flash(f"{CHANGES[change]}: done.", "success")
    return redirect(url_for("staff.board"))
