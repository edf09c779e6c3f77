"""A peer's own page: status for the shift, upcoming callbacks and follow-ups, recent calls.

Peers never see a caller's number here: only times, languages and notes.
"""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from sqlalchemy import or_, select

from callflows import escalation, line
from callflows.peers import SELF_STATUSES
from ivr.dashboard.core import PEER_STATUS_LABELS, audit, aware, bp, peer_required
from ivr.db import get_session
from ivr.services import services
from models import Call, CallbackRequest, Peer, utcnow
from models.errors import DecryptError
from models.tables import FollowUp, PeerRequest, WrapUpNote



def _me() -> Peer:
    peer = get_session().get(Peer, current_user.peer_id)
    if peer is None:
        abort(403)
    return peer


def _my_calls(peer: Peer) -> list[Call]:
    """Calls this peer took (routing records who accepted each request) or wrote a note for."""
    db = get_session()
    noted = select(WrapUpNote.call_id).where(WrapUpNote.peer_id == peer.id)
    taken = select(PeerRequest.call_id).where(PeerRequest.peer_id == peer.id, PeerRequest.call_id.is_not(None))
    return list(db.scalars(select(Call).where(or_(Call.id.in_(noted), Call.id.in_(taken)))
                           .order_by(Call.started_at.desc()).limit(15)))


@bp.get("/me")
@peer_required
def my_shift() -> str:
    """My status, my follow-ups and callbacks, my recent calls."""
    db = get_session()
    peer = _me()
    follow_ups = db.scalars(select(FollowUp).where(FollowUp.peer_id == peer.id, FollowUp.status == "open")
                            .order_by(FollowUp.created_at)).all()
    # Callbacks assigned to me, and the line's unassigned ones (any available peer may be rung for them).
    callbacks = db.scalars(
        select(CallbackRequest)
        .where(CallbackRequest.status.in_(("pending", "dialing")),
               or_(CallbackRequest.peer_id == peer.id, CallbackRequest.peer_id.is_(None)))
        .order_by(CallbackRequest.arrived_at, CallbackRequest.id).limit(20)).all()
    calls = _my_calls(peer)
    notes: dict[int, list[str]] = {}
    vault = services().vault
    for note in db.scalars(select(WrapUpNote).where(WrapUpNote.peer_id == peer.id,
                                                    WrapUpNote.call_id.in_([c.id for c in calls]))
                           .order_by(WrapUpNote.id)):
        try:
            notes.setdefault(note.call_id, []).append(vault.decrypt_text(note.body_encrypted))
        except DecryptError:
            notes.setdefault(note.call_id, []).append("(this note cannot be decrypted)")
    return render_template("staff/my_shift.html", peer=peer, self_statuses=SELF_STATUSES, follow_ups=follow_ups,
                           callbacks=callbacks, calls=calls, notes=notes, now=utcnow(), aware=aware,
                           missed_limit=services().settings.peer_missed_offers_break,
                           listened=escalation.monitored(db, peer.id))


@bp.post("/me/status")
@peer_required
def set_my_status() -> ResponseReturnValue:
    """Change my status (available, on a break, signed off); audit-logged."""
    db = get_session()
    peer = _me()
    new = request.form.get("status", "")
    if new not in SELF_STATUSES:
        flash("Choose available, on a break or signed off.", "error")
        return redirect(url_for("staff.my_shift"))
    change = line.set_peer_status(db, services(), peer, new, utcnow())
    if change.outcome == "on_call":
        flash("You are on a call; your status changes when it ends.", "error")
        return redirect(url_for("staff.my_shift"))
    if change.outcome == "changed":
        audit("peer_status", "peer", peer.id, detail=f"{change.before} -> {change.after}")
        db.commit()
    flash(f"Your status is now: {PEER_STATUS_LABELS[new]}.", "success")
    return redirect(url_for("staff.my_shift"))


@bp.post("/me/follow-ups/<int:follow_up_id>/done")
@peer_required
def follow_up_done(follow_up_id: int) -> ResponseReturnValue:
    """Mark one of my follow-ups done."""
    db = get_session()
    item = db.get(FollowUp, follow_up_id)
    if item is None or item.peer_id != current_user.peer_id:
        abort(404)
    if item.status != "done":
        item.status = "done"
        item.done_at = utcnow()
        audit("follow_up_done", "follow_up", item.id)
        db.commit()
    flash("Follow-up marked done.", "success")
    return redirect(url_for("staff.my_shift"))


@bp.post("/me/calls/<int:call_id>/wrap-up")
@peer_required
def wrap_up(call_id: int) -> ResponseReturnValue:
    """Add a short wrap-up note to one of my calls (encrypted at rest)."""
    db = get_session()
    peer = _me()
    if call_id not in {c.id for c in _my_calls(peer)}:
        abort(404)
    body = request.form.get("note", "").strip()
    if not body:
        flash("Write the note before saving it.", "error")
        return redirect(url_for("staff.my_shift"))
    db.add(WrapUpNote(call_id=call_id, peer_id=peer.id, body_encrypted=services().vault.encrypt_text(body[:280])))
    audit("wrap_up_note", "call", call_id)
    db.commit()
    flash("Wrap-up note saved.", "success")
    return redirect(url_for("staff.my_shift"))
