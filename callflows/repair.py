"""Peer state that repairs itself: ask Twilio about every peer held with no news, and free them.

Every way a peer becomes busy has a way back driven by a status callback (a ringing leg, the
room, a callback's two legs, the peer's own sign-on call). A status callback can still be
lost between Twilio and the app (a network fault, the app down for a moment). So the periodic
tick runs :func:`repair_peers`: for every peer busy for longer than ``GRACE`` (or on a sign-on
call), it asks the REST API about each of their legs and replays what a lost callback would
have said; a peer left busy with no live leg at all is freed. Each repair is audit-logged.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows import callbacks, line, routing
from callflows.calls import FINAL_CALL_STATUSES
from callflows.errors import TwilioGatewayError
from callflows.peers import LIVE_LEGS, has_live_call, release_peer
from callflows.services import Services
from callflows.times import aware
from models import AuditEntry, Peer
from models.tables import CallbackAttempt, PeerRequest, RingLeg

log = logging.getLogger(__name__)

# How long a peer may be busy before Twilio is asked about their legs (a ringing leg gives up
# after 20 s; a status callback arrives within seconds of the end).
GRACE = timedelta(seconds=45)


def _over(svc: Services, call_sid: str | None) -> str | None:
    """The final status of a call Twilio says is over (``completed`` when Twilio has no such call); None while live."""
    if not call_sid:
        return None
    status = svc.twilio.call_status(call_sid)
    if status is None:
        return "completed"
    return status if status in FINAL_CALL_STATUSES else None


def _audit(session: Session, peer: Peer, before: str, detail: str, now: datetime) -> None:
    session.add(AuditEntry(at=now, action="peer_repaired", target_type="peer", target_id=peer.id,
                           detail=f"{before} -> {peer.status}: {detail}"[:500]))
    session.commit()


def _repair_ring_legs(session: Session, svc: Services, peer: Peer, stale: datetime, now: datetime) -> list[str]:
    fixed = []
    legs = session.scalars(select(RingLeg).where(RingLeg.peer_id == peer.id,
                                                 RingLeg.status.in_((*LIVE_LEGS, "accepted")))).all()
    for leg in legs:
        if leg.call_sid is None:
            if (aware(leg.created_at) or now) <= stale:  # Twilio never gave it a SID: it never rang
                # The line's fault (a worker died before Twilio answered), not the peer's: no miss.
                leg.status, leg.ended_at = "failed", now
                session.commit()
                release_peer(session, peer, now)
                req = session.get(PeerRequest, leg.request_id)
                if req is not None and req.status == "ringing" and not routing.live_legs(session, req.id):
                    req.status = "waiting"
                session.commit()
                line.dispatch(session, svc, now)
                fixed.append(f"leg {leg.id} never placed")
            continue
        status = _over(svc, leg.call_sid)
        if status is not None:
            line.ring_leg_status(session, svc, leg, status, now)
            fixed.append(f"leg {leg.id} {status} (its status callback was lost)")
            continue
        req = session.get(PeerRequest, leg.request_id)
        if leg.status == "accepted" and req is not None and req.status == "connected":
            # The peer is on the line; is the caller? A lost caller status callback leaves the peer alone.
            caller = _over(svc, req.call_sid)
            if caller is not None:
                line.call_ended(session, svc, req.call_sid, now)
                fixed.append(f"caller of request {req.id} {caller} (its status callback was lost)")
    return fixed


def _repair_attempts(session: Session, svc: Services, peer: Peer, now: datetime) -> list[str]:
    fixed = []
    attempts = session.scalars(select(CallbackAttempt).where(CallbackAttempt.peer_id == peer.id,
                                                             CallbackAttempt.stage.in_(callbacks.LIVE_STAGES))).all()
    for attempt in attempts:
        if attempt.stage in ("caller_ringing", "connected"):
            caller = _over(svc, attempt.caller_call_sid)
            if caller is not None:
                callbacks.caller_leg_status(session, svc, attempt, caller, now)
                fixed.append(f"callback attempt {attempt.id} caller {caller}")
        status = _over(svc, attempt.peer_call_sid)
        if status is not None:
            session.refresh(attempt)
            line.callback_peer_leg_status(session, svc, attempt, status, now)
            fixed.append(f"callback attempt {attempt.id} peer {status}")
    return fixed


def _live_attempt(session: Session, peer_id: int) -> bool:
    return session.scalar(select(CallbackAttempt.id).where(CallbackAttempt.peer_id == peer_id,
                                                           CallbackAttempt.stage.in_(callbacks.LIVE_STAGES))
                          .limit(1)) is not None


def repair_peers(session: Session, svc: Services, now: datetime) -> list[int]:
    """Ask the REST API about peers busy for longer than GRACE (and peers on a sign-on call); returns peers repaired."""
    stale = now - GRACE
    repaired = []
    held = session.scalars(select(Peer).where(Peer.status == "busy", Peer.status_changed_at <= stale)).all()
    for peer in held:
        before = peer.status
        try:
            fixed = _repair_ring_legs(session, svc, peer, stale, now) + _repair_attempts(session, svc, peer, now)
        except TwilioGatewayError as exc:  # Twilio unreachable: ask again at the next tick
            log.warning("could not check the legs of peer %s: %s", peer.id, exc)
            continue
        session.refresh(peer)
        if peer.status == "busy" and not has_live_call(session, peer.id) and not _live_attempt(session, peer.id):
            peer.status = "available" if peer.active else "signed_off"
            peer.status_changed_at = now
            session.commit()
            fixed.append("no live leg")
            line.dispatch(session, svc, now)
        if fixed:
            _audit(session, peer, before, "; ".join(fixed), now)
            repaired.append(peer.id)
    for peer in session.scalars(select(Peer).where(Peer.line_call_sid.is_not(None))).all():
        sid = peer.line_call_sid
        try:
            status = _over(svc, sid)
        except TwilioGatewayError as exc:
            log.warning("could not check the sign-on call of peer %s: %s", peer.id, exc)
            continue
        if status is not None and sid is not None:
            line.call_ended(session, svc, sid, now)  # frees the peer to be rung, and offers them
            session.refresh(peer)
            _audit(session, peer, peer.status, f"sign-on call {status} (its status callback was lost)", now)
            repaired.append(peer.id)
    if repaired:
        log.warning("repaired peers %s: their status callbacks were lost", repaired)
    return repaired


# What holds each peer (the live board) ------------------------------------------------------

STAGE_WORDS = {"peer_ringing": "callback: ringing the peer", "peer_answered": "callback: the peer is answering",
               "caller_ringing": "callback: dialling the caller", "connected": "callback: with the caller"}


@dataclass(frozen=True)
class Hold:
    """One thing holding a peer: a live call, a ring for a caller, or a callback attempt."""

    peer_id: int
    peer_name: str
    what: str
    since: datetime


def holding(session: Session, now: datetime) -> list[Hold]:
    """Every call that holds a peer (live calls, rings, callbacks), oldest first; a busy peer with none is named too."""
    peers = {p.id: p for p in session.scalars(select(Peer).where(Peer.status == "busy"))}
    holds: list[Hold] = []
    for leg in session.scalars(select(RingLeg).where(RingLeg.status.in_((*LIVE_LEGS, "accepted")))):
        peer = peers.get(leg.peer_id) or session.get(Peer, leg.peer_id)
        if peer is not None:
            what = "live call with a caller" if leg.status == "accepted" else "ringing for a caller"
            holds.append(Hold(peer.id, peer.display_name, what, aware(leg.created_at) or now))
    for attempt in session.scalars(select(CallbackAttempt).where(CallbackAttempt.stage.in_(callbacks.LIVE_STAGES))):
        peer = peers.get(attempt.peer_id or 0) or (session.get(Peer, attempt.peer_id) if attempt.peer_id else None)
        if peer is not None:
            holds.append(Hold(peer.id, peer.display_name, STAGE_WORDS.get(attempt.stage, "callback"),
                              aware(attempt.started_at) or now))
    held = {h.peer_id for h in holds}
    for peer in peers.values():
        if peer.id not in held:  # the repair asks Twilio about it within a minute or two
            holds.append(Hold(peer.id, peer.display_name, "no live call known (being checked)",
                              aware(peer.status_changed_at) or now))
    return sorted(holds, key=lambda h: (h.since, h.peer_id))
