"""Supervisor pages for running the line: the peer roster, the live board, failed jobs."""
from __future__ import annotations

import re
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from redis.exceptions import RedisError
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry
from flask.typing import ResponseReturnValue
from sqlalchemy import func, select

from callflows import line, repair
from ivr.dashboard.monitor import CHANGES as MONITOR_CHANGES, MODES as MONITOR_MODES, live_calls, live_callbacks, trainees
from ivr.dashboard.core import audit, aware, bp, supervisor_required
from ivr.db import get_session
from ivr.services import services
from models import Call, CallbackRequest, CallEvent, Peer, utcnow
from models.tables import PeerRequest
from models.crypto import normalize_number
from queues.connection import ALL_QUEUES, queue

_PHONE = re.compile(r"^\+?[0-9]{7,15}$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


# Roster --------------------------------------------------------------------------------

def _languages() -> list[str]:
    return sorted(services().flows)


def _parse_peer_form(peer: Peer | None) -> tuple[dict[str, Any], list[str]]:
    """Read and check the roster form; returns the values and the problems found."""
    form = request.form
    errors: list[str] = []
    name = form.get("display_name", "").strip()
    if not name or len(name) > 80:
        errors.append("Enter a display name of up to 80 characters.")
    phone = normalize_number(form.get("phone", ""))
    if phone and not _PHONE.match(phone):
        errors.append("Enter the phone number with country code, for example +15555550123.")
    if peer is None and not phone:
        errors.append("Enter the peer's phone number.")
    languages = [lang for lang in form.getlist("languages") if lang in _languages()]
    if not languages:
        errors.append("Choose at least one language.")
    tags = sorted({t.strip().lower().replace(" ", "-") for t in form.get("tags", "").split(",") if t.strip()})
    bad = [t for t in tags if not _TAG.match(t)]
    if bad:
        errors.append("Tags may use letters, digits and hyphens: " + ", ".join(bad))
    if phone and not errors:
        other = get_session().scalar(select(Peer).where(Peer.phone_hash == services().vault.lookup_hash(phone)))
        if other is not None and (peer is None or other.id != peer.id):
            errors.append("Another peer already has that phone number.")
    return {"display_name": name, "phone": phone, "languages": languages, "tags": tags,
            "trainee": form.get("trainee") == "1"}, errors


@bp.get("/peers")
@supervisor_required
def roster() -> str:
    """All peers with their status, languages and tags."""
    peers = get_session().scalars(select(Peer).order_by(Peer.active.desc(), Peer.display_name)).all()
    return render_template("staff/roster.html", peers=peers)


@bp.route("/peers/new", methods=["GET", "POST"])
@supervisor_required
def add_peer() -> ResponseReturnValue:
    """Add a peer to the roster."""
    values: dict[str, Any] = {"display_name": "", "languages": ["en"], "tags": [], "trainee": False}
    if request.method == "POST":
        values, errors = _parse_peer_form(None)
        if not errors:
            peer = Peer(display_name=values["display_name"], languages=values["languages"], tags=values["tags"],
                        status="signed_off", trainee=values["trainee"])
            peer.set_phone(services().vault, values["phone"])
            db = get_session()
            db.add(peer)
            db.flush()
            audit("add_peer", "peer", peer.id)
            db.commit()
            flash(f"{peer.display_name} is on the roster.", "success")
            return redirect(url_for("staff.roster"))
        for error in errors:
            flash(error, "error")
        return render_template("staff/peer_form.html", peer=None, values=values, languages=_languages()), 400
    return render_template("staff/peer_form.html", peer=None, values=values, languages=_languages()), 200


@bp.route("/peers/<int:peer_id>/edit", methods=["GET", "POST"])
@supervisor_required
def edit_peer(peer_id: int) -> ResponseReturnValue:
    """Edit a peer's name, phone, languages and tags."""
    db = get_session()
    peer = db.get(Peer, peer_id)
    if peer is None:
        abort(404)
    values: dict[str, Any] = {"display_name": peer.display_name, "languages": peer.languages, "tags": peer.tags,
                              "trainee": peer.trainee}
    if request.method == "POST":
        values, errors = _parse_peer_form(peer)
        if not errors:
            changed = [k for k in ("display_name", "languages", "tags", "trainee") if getattr(peer, k) != values[k]]
            peer.trainee = values["trainee"]
            peer.display_name = values["display_name"]
            peer.languages = values["languages"]
            peer.tags = values["tags"]
            if values["phone"]:
                peer.set_phone(services().vault, values["phone"])
                changed.append("phone")
            audit("edit_peer", "peer", peer.id, detail="changed " + (", ".join(changed) or "nothing"))
            db.commit()
            flash(f"{peer.display_name} is updated.", "success")
            return redirect(url_for("staff.roster"))
        for error in errors:
            flash(error, "error")
        return render_template("staff/peer_form.html", peer=peer, values=values, languages=_languages()), 400
    return render_template("staff/peer_form.html", peer=peer, values=values, languages=_languages()), 200


@bp.post("/peers/<int:peer_id>/active")
@supervisor_required
def set_peer_active(peer_id: int) -> ResponseReturnValue:
    """Deactivate a peer (no more calls; signed off) or bring them back."""
    db = get_session()
    peer = db.get(Peer, peer_id)
    if peer is None:
        abort(404)
    active = request.form.get("active") == "yes"
    if active:
        peer.active = True
    else:
        change = line.deactivate_peer(db, services(), peer, utcnow())
        if change.outcome == "changed":
            audit("peer_status", "peer", peer.id, detail=f"{change.before} -> signed_off (deactivated)")
    audit("activate_peer" if active else "deactivate_peer", "peer", peer.id)
    db.commit()
    flash(f"{peer.display_name} is {'active again' if active else 'deactivated'}.", "success")
    return redirect(url_for("staff.roster"))


# Live board -----------------------------------------------------------------------------

@bp.get("/board")
@supervisor_required
def board() -> str:
    """Calls in progress (with their peer), callers waiting for a peer, pending callbacks, peers."""
    db = get_session()
    calls = db.scalars(select(Call).where(Call.status == "in-progress", Call.direction == "inbound")
                      .order_by(Call.started_at)).all()
    call_ids = [c.id for c in calls]
    last_node: dict[int, str] = {}
    peer_of_call: dict[int, str] = {}
    if call_ids:
        latest = (select(CallEvent.call_id, func.max(CallEvent.id).label("last_id"))
                  .where(CallEvent.call_id.in_(call_ids)).group_by(CallEvent.call_id).subquery())
        for event in db.scalars(select(CallEvent).join(latest, CallEvent.id == latest.c.last_id)):
            last_node[event.call_id] = event.node
        for call_id, name in db.execute(
                select(PeerRequest.call_id, Peer.display_name).join(Peer, Peer.id == PeerRequest.peer_id)
                .where(PeerRequest.call_id.in_(call_ids), PeerRequest.status == "connected")):
            if call_id is not None:
                peer_of_call[call_id] = name
    # Callers waiting for a peer: routing keeps them as open peer requests (ringing or on hold).
    waiting = db.scalars(select(PeerRequest).where(PeerRequest.status.in_(("ringing", "waiting")))
                         .order_by(PeerRequest.arrived_at, PeerRequest.id)).all()
    waiting_calls = {r.call_id for r in waiting}
    talking = [c for c in calls if c.id not in waiting_calls]
    # "dialing" is a callback being placed right now; it is still the caller's turn in line.
    callbacks = db.scalars(select(CallbackRequest).where(CallbackRequest.status.in_(("pending", "dialing")))
                           .order_by(CallbackRequest.arrived_at, CallbackRequest.id)).all()
    peers = db.scalars(select(Peer).where(Peer.active.is_(True)).order_by(Peer.display_name)).all()
    peer_names = {p.id: p.display_name for p in peers}
    return render_template("staff/board.html", calls=talking, waiting=waiting, last_node=last_node,
                           peer_of_call=peer_of_call, callbacks=callbacks, peers=peers, peer_names=peer_names,
                           now=utcnow(), aware=aware, holding=repair.holding(db, utcnow()),
                           # In-call help: each conversation's details and the Listen / Coach / Join forms.
                           live=live_calls(db, utcnow()), live_callbacks=live_callbacks(db), trainees=trainees(db),
                           monitor_modes=MONITOR_MODES, monitor_changes=MONITOR_CHANGES)


# Failed jobs ----------------------------------------------------------------------------

@bp.get("/jobs")
@supervisor_required
def failed_jobs() -> tuple[str, int]:
    """Background jobs that failed, per queue, each with a retry button."""
    redis = services().redis
    rows: list[dict[str, Any]] = []
    try:
        for name in ALL_QUEUES:
            registry = FailedJobRegistry(queue=queue(name, redis))
            for job in Job.fetch_many(registry.get_job_ids(), connection=redis):
                if job is None:
                    continue
                result = job.latest_result()
                last_line = ((result.exc_string if result else "") or "").strip().splitlines()[-1:] or [""]
                rows.append({"queue": name, "id": job.id, "func": job.func_name, "args": job.args,
                             "ended_at": job.ended_at, "error": last_line[0][:300]})
    except (RedisError, OSError):
        return render_template("staff/jobs.html", rows=[], unavailable=True), 503
    return render_template("staff/jobs.html", rows=rows, unavailable=False), 200


@bp.post("/jobs/retry")
@supervisor_required
def retry_job() -> ResponseReturnValue:
    """Put a failed job back on its queue."""
    name = request.form.get("queue", "")
    job_id = request.form.get("job_id", "")
    if name not in ALL_QUEUES:
        abort(400)
    try:
        FailedJobRegistry(queue=queue(name, services().redis)).requeue(job_id)
    except (InvalidJobOperation, NoSuchJobError):
        flash("That job is no longer in the failed list.", "error")
        return redirect(url_for("staff.failed_jobs"))
    audit("retry_job", "job", None, detail=f"{name}:{job_id}")
    get_session().commit()
    flash(f"Job {job_id} is queued again.", "success")
    return redirect(url_for("staff.failed_jobs"))
