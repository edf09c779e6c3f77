"""Supervisor pages for voicemail: the inbox ranked by risk, a voicemail with its transcript and
audio, and the actions on it (reviewed, follow-up, note, retry, reveal the caller's number)."""
from __future__ import annotations

import json
from typing import Any

from flask import Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import case, select
from sqlalchemy.orm import Session

from callflows import voicemails
from callflows.errors import SchedulingError
from callflows.storage import stored_path
from ivr.dashboard.core import audit, aware, bp, supervisor_required
from ivr.dashboard.speech import speech_view
from ivr.dashboard.transcript import LOW_CONFIDENCE, tokens_for
from ivr.db import get_session
from ivr.services import services
from models import Caller, Peer, PeerStory, StaffUser, Voicemail, utcnow
from models.errors import DecryptError
from ivr.dashboard.labels import RISK_LABELS
from models.tables import FollowUp, VoicemailNote

# A voicemail not yet transcribed (or whose transcription failed) could be anything: it ranks
# above low and no risk, so it is never buried under messages known to be safe.
RISK_RANK = case(
    (Voicemail.risk_level == "high", 4),
    (Voicemail.risk_level == "medium", 3),
    (Voicemail.risk_level == "low", 1),
    (Voicemail.risk_level == "mentioned", 1),
    (Voicemail.risk_level == "none", 0),
    else_=2,
)


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(services().settings.secret_key, salt=salt)


def audio_url(kind: str, ident: int) -> str:
    """A signed URL for a recording, valid for a few minutes and only for the current user."""
    token = _serializer("peerline-staff-audio").dumps({"k": kind, "id": ident, "u": current_user.id})
    return url_for("staff.audio", token=token)


def read_audio(stored: str, encrypted: bool) -> bytes:
    """The audio bytes of a stored recording (decrypted when it is stored encrypted)."""
    path = stored_path(services().settings.instance_path, stored)
    if not path.is_file():
        abort(404)
    data = path.read_bytes()
    if encrypted or not data.startswith(b"RIFF"):
        try:
            data = services().vault.decrypt(data)
        except DecryptError:
            abort(404)
    return data


def _mimetype(data: bytes) -> str:
    if data.startswith(b"RIFF"):
        return "audio/wav"
    if data.startswith(b"ID3") or data[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return "application/octet-stream"


@bp.get("/audio/<token>")
@supervisor_required
def audio(token: str) -> ResponseReturnValue:
    """Serve a recording at its signed, expiring URL, decrypting on the fly; audit-logged."""
    try:
        data = _serializer("peerline-staff-audio").loads(token, max_age=current_app.config["STAFF_AUDIO_URL_TTL"])
    except SignatureExpired:
        abort(410)
    except BadSignature:
        abort(404)
    if data.get("u") != current_user.id:
        abort(403)
    db = get_session()
    if data.get("k") == "voicemail":
        vm = db.get(Voicemail, int(data["id"]))
        if vm is None or not vm.audio_path:
            abort(404)
        body = read_audio(vm.audio_path, encrypted=True)
        action, target = "play_recording", "voicemail"
    elif data.get("k") == "story":
        story = db.get(PeerStory, int(data["id"]))
        if story is None or not story.audio_path:
            abort(404)
        body = read_audio(story.audio_path, encrypted=False)
        action, target = "play_story", "story"
    else:
        abort(404)
    # Every download is logged, a range too (a range can be the whole file: "bytes=1-"), with
    # the bytes asked for, so the log shows what was fetched, not only where playing began.
    detail = f"range {request.headers.get('Range', '')[:80]}" if request.range else None
    audit(action, target, int(data["id"]), detail=detail)
    db.commit()
    response = Response(body, mimetype=_mimetype(body))
    response.headers["Cache-Control"] = "no-store"
    return response.make_conditional(request, accept_ranges=True, complete_length=len(body))


@bp.get("/audio-link/<kind>/<int:ident>")
@supervisor_required
def audio_link(kind: str, ident: int) -> ResponseReturnValue:
    """A fresh signed link for a recording, fetched by the player when it is played (links expire)."""
    if kind not in ("voicemail", "story"):
        abort(404)
    response = current_app.json.response({"url": audio_url(kind, ident)})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/voicemails")
@supervisor_required
def inbox() -> str:
    """Voicemails not yet reviewed, highest risk first, then the longest waiting."""
    show_all = request.args.get("show") == "all"
    stmt = select(Voicemail).order_by(RISK_RANK.desc(), Voicemail.risk_score.desc(), Voicemail.created_at.asc())
    if not show_all:
        stmt = stmt.where(Voicemail.reviewed_at.is_(None))
    voicemails = get_session().scalars(stmt.limit(300)).all()
    settings = services().settings
    views = {vm.id: speech_view(vm, settings) for vm in voicemails}
    # The phrases from the line's own list, with the recognizer's confidence: not the caller's words.
    flags = {vm.id: risk_flags(vm) for vm in voicemails}
    return render_template("staff/inbox.html", voicemails=voicemails, show_all=show_all, risk_labels=RISK_LABELS,
                           now=utcnow(), aware=aware, views=views, flags=flags)


def _decrypt_json(blob: bytes | None) -> Any:
    if not blob:
        return None
    try:
        return json.loads(services().vault.decrypt_text(blob))
    except (DecryptError, ValueError):
        return None


def risk_flags(vm: Voicemail) -> list[dict[str, Any]]:
    """The triage's flags of a voicemail (phrase, words, level, confidence, time); older rows hold words only."""
    flags = []
    for item in _decrypt_json(vm.risk_terms_encrypted) or []:
        if isinstance(item, str):
            item = {"text": item, "phrase": item}
        if isinstance(item, dict) and item.get("text"):
            flags.append({"phrase": str(item.get("phrase") or item["text"]), "text": str(item["text"]),
                          "category": item.get("category"), "level": item.get("level"),
                          "language": item.get("language") or vm.language or "en",
                          "negated_by": item.get("negated_by") or "", "conf": item.get("conf"),
                          "start": item.get("start"), "unsure": item.get("conf") is not None
                          and float(item["conf"]) < LOW_CONFIDENCE})
    return flags


def _get_voicemail(db: Session, vm_id: int) -> Voicemail:
    vm = db.get(Voicemail, vm_id)
    if vm is None:
        abort(404)
    return vm


def _render_voicemail(vm: Voicemail, revealed_number: str | None = None, status: int = 200) -> tuple[str, int]:
    db = get_session()
    vault = services().vault
    transcript = None
    if vm.transcript_encrypted:
        try:
            transcript = vault.decrypt_text(vm.transcript_encrypted)
        except DecryptError:
            transcript = None
    flags = risk_flags(vm)
    risk_terms = list(dict.fromkeys(f["text"] for f in flags))
    words = _decrypt_json(vm.words_encrypted)
    tokens = tokens_for(transcript or "", words if isinstance(words, list) else None, risk_terms)
    if transcript is not None:
        audit("view_transcript", "voicemail", vm.id)
    notes = db.scalars(select(VoicemailNote).where(VoicemailNote.voicemail_id == vm.id)
                       .order_by(VoicemailNote.created_at)).all()
    note_texts = []
    for note in notes:
        try:
            note_texts.append((note, vault.decrypt_text(note.body_encrypted)))
        except DecryptError:
            note_texts.append((note, "(this note cannot be decrypted with the current key)"))
    follow_ups = db.scalars(select(FollowUp).where(FollowUp.voicemail_id == vm.id).order_by(FollowUp.id)).all()
    peers = db.scalars(select(Peer).where(Peer.active.is_(True)).order_by(Peer.display_name)).all()
    reviewer = db.get(StaffUser, vm.reviewed_by_id) if vm.reviewed_by_id else None
    db.commit()
    html = render_template(
        "staff/voicemail.html", vm=vm, transcript=transcript, tokens=tokens, risk_terms=risk_terms, flags=flags,
        notes=note_texts, follow_ups=follow_ups, peers=peers, risk_labels=RISK_LABELS, reviewer=reviewer,
        audio_src=audio_url("voicemail", vm.id) if vm.audio_path else None, revealed_number=revealed_number,
        has_caller=vm.caller_id is not None, view=speech_view(vm, services().settings),
    )
    return html, status


@bp.get("/voicemails/<int:vm_id>")
@supervisor_required
def voicemail(vm_id: int) -> tuple[str, int]:
    """One voicemail: transcript with risk and unsure words marked, audio, actions."""
    return _render_voicemail(_get_voicemail(get_session(), vm_id))


@bp.post("/voicemails/<int:vm_id>/reveal")
@supervisor_required
def reveal_number(vm_id: int) -> tuple[str, int]:
    """Show the caller's number on this page only, after logging the reveal."""
    db = get_session()
    vm = _get_voicemail(db, vm_id)
    caller = db.get(Caller, vm.caller_id) if vm.caller_id else None
    if caller is None:
        abort(404)
    reason = request.form.get("reason", "").strip()
    if not reason:
        flash("Say why you need the number before revealing it.", "error")
        return _render_voicemail(vm, status=400)
    number = services().vault.decrypt_text(caller.number_encrypted)
    audit("reveal_number", "voicemail", vm.id, detail=f"caller {caller.id}: {reason}")
    db.commit()
    return _render_voicemail(vm, revealed_number=number)


@bp.post("/voicemails/<int:vm_id>/review")
@supervisor_required
def mark_reviewed(vm_id: int) -> ResponseReturnValue:
    """Mark a voicemail reviewed (it leaves the inbox)."""
    db = get_session()
    vm = _get_voicemail(db, vm_id)
    if vm.reviewed_at is None:
        vm.reviewed_at = utcnow()
        vm.reviewed_by_id = current_user.id
        audit("mark_reviewed", "voicemail", vm.id)
        db.commit()
    flash(f"Voicemail {vm.id} is marked reviewed.", "success")
    return redirect(url_for("staff.inbox"))


@bp.post("/voicemails/<int:vm_id>/follow-up")
@supervisor_required
def assign_follow_up(vm_id: int) -> ResponseReturnValue:
    """Assign a follow-up on this voicemail to a peer."""
    db = get_session()
    vm = _get_voicemail(db, vm_id)
    peer = db.get(Peer, request.form.get("peer_id", type=int) or 0)
    if peer is None or not peer.active:
        flash("Choose an active peer for the follow-up.", "error")
        return _render_voicemail(vm, status=400)
    note = request.form.get("note", "").strip()[:500] or None
    db.add(FollowUp(voicemail_id=vm.id, peer_id=peer.id, assigned_by_id=current_user.id, note=note))
    audit("assign_follow_up", "voicemail", vm.id, detail=f"peer {peer.id}")
    db.commit()
    flash(f"Follow-up assigned to {peer.display_name}.", "success")
    return redirect(url_for("staff.voicemail", vm_id=vm.id))


@bp.post("/voicemails/<int:vm_id>/note")
@supervisor_required
def add_note(vm_id: int) -> ResponseReturnValue:
    """Add a note to a voicemail (stored encrypted)."""
    db = get_session()
    vm = _get_voicemail(db, vm_id)
    body = request.form.get("body", "").strip()
    if not body:
        flash("Write the note before saving it.", "error")
        return _render_voicemail(vm, status=400)
    db.add(VoicemailNote(voicemail_id=vm.id, author_id=current_user.id,
                         body_encrypted=services().vault.encrypt_text(body[:4000])))
    audit("add_note", "voicemail", vm.id)
    db.commit()
    flash("Note saved.", "success")
    return redirect(url_for("staff.voicemail", vm_id=vm.id))


@bp.post("/voicemails/<int:vm_id>/retry")
@supervisor_required
def retry_transcription(vm_id: int) -> ResponseReturnValue:
    """Send a failed voicemail back to the transcription queue."""
    db = get_session()
    vm = _get_voicemail(db, vm_id)
    if vm.status != "failed":
        flash("Only a failed transcription can be retried.", "error")
        return _render_voicemail(vm, status=409)
    try:
        voicemails.enqueue_transcription(services(), vm)
    except SchedulingError:
        flash("The job queue cannot be reached right now; try again in a minute.", "error")
        return _render_voicemail(vm, status=503)
    vm.status = "pending"
    vm.failure_reason = None
    audit("retry_transcription", "voicemail", vm.id)
    db.commit()
    flash(f"Voicemail {vm.id} is queued for transcription again.", "success")
    return redirect(url_for("staff.voicemail", vm_id=vm.id))
