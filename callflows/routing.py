"""Live peer routing: a caller's request, ringing peers, the atomic first pickup, the legs.

Functions take a SQLAlchemy session, the process's :class:`~callflows.services.Services`
and ``now``, so tests drive time. Offering free peers to the whole line (in arrival order)
after one of these events is :mod:`callflows.line`'s job.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from callflows.calls import by_id, find_or_create_call, record_event
from callflows.errors import TwilioGatewayError
from callflows.peers import (LIVE_LEGS, claim_peer, offer_missed, offer_taken, peers_on_shift, pick_peers,
                             release_peer, start_wrap_up)
from callflows.sql import rowcount
from callflows.services import Services
from callflows.times import aware
from models import Peer
from models.tables import PeerRequest, RingLeg

log = logging.getLogger(__name__)

RING_TIMEOUT_S = 20  # seconds a peer's phone rings before Twilio gives up (no-answer)
RETRY_SAME_PEER_AFTER = timedelta(minutes=2)  # a peer who missed this caller is not rung again at once
OPEN_REQUESTS = ("ringing", "waiting")
# What a caller may ask for -> the peer tag that matches (stories topics map the same way).
TOPIC_TAGS = {"medication": "medication-based-recovery", "pain": "chronic-pain"}


# URLs Twilio fetches, from the routes themselves (jobs have no request)


def whisper_url(svc: Services, leg_id: int) -> str:
    """What Twilio fetches when a peer picks up."""
    return svc.public_url("routing.leg_whisper", leg_id=leg_id)


def leg_status_url(svc: Services, leg_id: int) -> str:
    """Status callback of a peer's leg (no-answer, completed...)."""
    return svc.public_url("routing.leg_status", leg_id=leg_id)


def leg_notice_url(svc: Services, leg_id: int, why: str) -> str:
    """Where a peer in the whisper (or waiting in the room) is moved to hear why the call is not theirs: ``taken`` or ``gone``."""
    return svc.public_url("routing.leg_notice", leg_id=leg_id, why=why)


def caller_back_url(svc: Services, req: PeerRequest) -> str:
    """Where a caller left alone in the room is moved: told, and back in line in their place."""
    return svc.public_url("routing.caller_back", req_id=req.id, lang=req.language)


def caller_connect_url(svc: Services, req: PeerRequest) -> str:
    """Where the waiting caller is redirected once a peer accepted."""
    return svc.public_url("routing.caller_connect", req_id=req.id, lang=req.language)


def queue_name(language: str) -> str:
    """The Twilio queue callers of one language wait in (positions are per language)."""
    return f"peerline-{language}"


def room_name(req: PeerRequest) -> str:
    """The private conference of one caller and one peer."""
    return f"call-{req.id}"


# Requests and ringing -------------------------------------------------------------------


def open_request(session: Session, call_sid: str, call_id: int | None, language: str,
                 wanted_tag: str | None, arrived_at: datetime) -> PeerRequest:
    """A caller's request for a peer (a new one each time they ask)."""
    req = PeerRequest(call_sid=call_sid, call_id=call_id, language=language, wanted_tag=wanted_tag,
                      status="waiting", arrived_at=arrived_at)
    session.add(req)
    session.flush()
    return req


def ask_for_peer(session: Session, svc: Services, call_sid: str, language: str, tag: str | None,
                 now: datetime) -> PeerRequest | None:
    """A caller asks for a peer: open their request and ring; None when nobody who speaks their language is on shift."""
    if peers_on_shift(session, language) == 0:
        record_event(session, call_sid, "peer", None, "no peers on shift")
        session.commit()
        return None
    call = find_or_create_call(session, call_sid)
    session.flush()
    req = open_request(session, call_sid, call.id, language, tag, now)
    record_event(session, call_sid, "peer", None, f"request {req.id}" + (f" tag {tag}" if tag else ""))
    session.commit()
    ring(session, svc, req, now)
    return req


def ring(session: Session, svc: Services, req: PeerRequest, now: datetime,
         exclude: set[int] | None = None) -> int:
    """Ring up to PEERS_RING_AT_ONCE available peers for ``req``; returns how many ring."""
    limit = max(1, svc.settings.peers_ring_at_once)
    rung = 0
    for peer in pick_peers(session, req.language, req.wanted_tag, limit, exclude or set()):
        if not claim_peer(session, peer.id, now):
            continue
        leg = RingLeg(request_id=req.id, peer_id=peer.id, status="ringing", created_at=now)
        session.add(leg)
        session.flush()
        session.commit()  # the claim and the leg are stored before Twilio can call back
        try:
            leg.call_sid = svc.twilio.create_call(
                svc.vault.decrypt_text(peer.phone_encrypted),
                whisper_url(svc, leg.id),
                leg_status_url(svc, leg.id),
                timeout=RING_TIMEOUT_S,
            )
        except TwilioGatewayError:  # network failures included
            log.exception("could not ring peer %s", peer.id)
            leg.status = "no_answer"
            leg.ended_at = now
            claimed = session.get(Peer, peer.id)
            if claimed is not None:
                session.refresh(claimed)
                release_peer(session, claimed, now)
            session.commit()
            continue
        rung += 1
    req.status = "ringing" if rung or live_legs(session, req.id) else "waiting"
    session.commit()
    return rung


def live_legs(session: Session, request_id: int) -> list[RingLeg]:
    """The legs of a request still ringing or playing their whisper, in a stable order."""
    return list(session.scalars(
        select(RingLeg).where(RingLeg.request_id == request_id, RingLeg.status.in_(LIVE_LEGS)).order_by(RingLeg.id)
    ))


def recently_missed(session: Session, request_id: int, now: datetime) -> set[int]:
    """Peers who missed this caller a moment ago, or whose line dropped (not rung again for them at once)."""
    legs = session.scalars(select(RingLeg).where(RingLeg.request_id == request_id,
                                                 RingLeg.status.in_(("no_answer", "dropped"))))
    return {leg.peer_id for leg in legs if (aware(leg.ended_at) or now) > now - RETRY_SAME_PEER_AFTER}


def _end_legs(session: Session, svc: Services, legs: list[RingLeg], new_status: str, now: datetime,
              why: str) -> None:
    """Stop other peers' legs: cancel a leg still ringing; one in its whisper is told ``why`` (taken, gone), then hung up."""
    for leg in legs:
        previous = leg.status
        leg.status = new_status
        leg.ended_at = now
        session.commit()  # marked first, so its own status callback finds nothing to do
        if leg.call_sid:
            try:
                if previous == "ringing":
                    svc.twilio.update_call(leg.call_sid, status="canceled")
                else:
                    # Never a silent hang-up on a peer who picked up: they hear why, then the line hangs up.
                    svc.twilio.update_call(leg.call_sid, url=leg_notice_url(svc, leg.id, why), method="POST")
            except TwilioGatewayError:  # network failures included
                log.warning("could not end leg %s (it may have ended already)", leg.call_sid)
        peer = session.get(Peer, leg.peer_id)
        if peer is not None:
            release_peer(session, peer, now)
    session.commit()


def accept(session: Session, svc: Services, leg: RingLeg, now: datetime) -> str:
    """A peer pressed 1: claim the caller atomically, bridge, stop the other legs.

    Returns ``accepted``, ``taken`` (another peer won) or ``caller_gone``.
    """
    req = session.get(PeerRequest, leg.request_id)
    assert req is not None
    result = session.execute(
        update(PeerRequest)
        .where(PeerRequest.id == req.id, PeerRequest.peer_id.is_(None), PeerRequest.status.in_(OPEN_REQUESTS))
        .values(peer_id=leg.peer_id, status="connected", connected_at=now)
    )
    session.commit()
    session.refresh(req)
    if rowcount(result) != 1:
        outcome = "taken" if req.status in ("connected", "ended") else "caller_gone"
        _close_leg(session, leg, outcome, now)
        return outcome
    leg.status = "accepted"
    session.commit()
    offer_taken(session, leg.peer_id)
    others = [other for other in live_legs(session, req.id) if other.id != leg.id]
    _end_legs(session, svc, others, "canceled", now, "taken")
    try:
        svc.twilio.update_call(req.call_sid, url=caller_connect_url(svc, req), method="POST")
    except TwilioGatewayError:  # network failures included
        # The caller's call is over (Twilio refuses to redirect a finished call): never
        # bridge a peer to nobody.
        log.info("caller of request %s is gone; not bridging", req.id)
        req.status = "abandoned"
        req.ended_at = now
        _close_leg(session, leg, "caller_gone", now)
        return "caller_gone"
    return "accepted"


def _close_leg(session: Session, leg: RingLeg, status: str, now: datetime) -> None:
    leg.status = status
    leg.ended_at = now
    peer = session.get(Peer, leg.peer_id)
    if peer is not None:
        release_peer(session, peer, now)
    session.commit()


def leg_answered(session: Session, leg: RingLeg) -> None:
    """The peer picked up (the whisper is playing): hang-up now means completed, not canceled."""
    if leg.status == "ringing":
        leg.status = "answered"
        session.commit()


def leg_ended(session: Session, svc: Services, leg: RingLeg, now: datetime) -> None:
    """A peer's leg reached a final status: free the peer, end the call, or ring the next peer."""
    req = session.get(PeerRequest, leg.request_id)
    assert req is not None
    peer = session.get(Peer, leg.peer_id)
    if leg.status == "accepted":
        # The peer's call ended and their <Dial> never reported the room (peer_in_room): the
        # line dropped between pressing 1 and the conversation. Never leave the caller alone.
        _close_leg(session, leg, "dropped", now)
        if req.status == "connected" and req.peer_id == leg.peer_id:
            back_in_line(session, svc, req, now)
        return
    if leg.status in LIVE_LEGS:
        # Voicemail, no key pressed, hung up in the whisper, busy, failed: all count as no answer.
        _close_leg(session, leg, "no_answer", now)
        if peer is not None and not peer.line_call_sid:  # busy because they are calling the line: no miss
            offer_missed(session, svc, peer, now)
        if req.status == "ringing" and not live_legs(session, req.id):
            ring(session, svc, req, now, exclude=recently_missed(session, req.id, now))
        return
    # Already closed (canceled, taken, caller gone): only make sure the peer is not stuck.
    if peer is not None:
        release_peer(session, peer, now)
        session.commit()


def caller_left(session: Session, svc: Services, req: PeerRequest, status: str, now: datetime) -> bool:
    """The caller hung up, or chose a callback, a message or the crisis line: stop ringing for them.

    Returns False when the request was already over.
    """
    if req.status not in OPEN_REQUESTS:
        return False
    req.status = status
    req.ended_at = now
    session.commit()
    _end_legs(session, svc, live_legs(session, req.id), "caller_gone", now, "gone")
    return True


def back_in_line(session: Session, svc: Services, req: PeerRequest, now: datetime) -> None:
    """The peer who accepted is gone before the conversation: the caller is told and waits again, in their place."""
    req.status = "waiting"  # arrived_at unchanged: the line is ordered by it
    req.peer_id = None
    req.connected_at = None
    session.commit()
    try:
        svc.twilio.update_call(req.call_sid, url=caller_back_url(svc, req), method="POST")
    except TwilioGatewayError:  # network failures included: the caller's call is over too
        log.info("caller of request %s is gone too", req.id)
        req.status = "abandoned"
        req.ended_at = now
        session.commit()


def times_back(session: Session, request_id: int) -> int:
    """How many times a peer who accepted this caller dropped before the room (the caller went back in line)."""
    return len(session.scalars(select(RingLeg.id).where(RingLeg.request_id == request_id,
                                                        RingLeg.status == "dropped")).all())


def peer_in_room(session: Session, svc: Services, leg: RingLeg, now: datetime) -> None:
    """The peer's <Dial> into the room ended (they were in it): the call is over for them, wrap-up begins."""
    if leg.status != "accepted":
        return
    leg.status = "completed"
    leg.ended_at = now
    req = session.get(PeerRequest, leg.request_id)
    if req is not None and req.status == "connected":
        req.status = "ended"
        req.ended_at = now
    peer = session.get(Peer, leg.peer_id)
    if peer is not None:
        start_wrap_up(session, svc, peer, now)
    session.commit()


def caller_never_joined(session: Session, svc: Services, req: PeerRequest, now: datetime) -> bool:
    """The caller's call ended after a peer accepted, before their <Dial> into the room ended: tell the peer.

    The peer waits alone in the room otherwise. They hear that the caller hung up, and their
    wrap-up begins. Returns False when the request was not in that state.
    """
    if req.status != "connected":
        return False
    req.status = "abandoned"
    req.ended_at = now
    leg = session.scalar(select(RingLeg).where(RingLeg.request_id == req.id, RingLeg.peer_id == req.peer_id,
                                               RingLeg.status == "accepted"))
    session.commit()
    if leg is None:
        return True
    leg.status = "completed"
    leg.ended_at = now
    peer = session.get(Peer, leg.peer_id)
    if peer is not None:
        start_wrap_up(session, svc, peer, now)
    session.commit()
    if leg.call_sid:
        try:
            svc.twilio.update_call(leg.call_sid, url=leg_notice_url(svc, leg.id, "left"), method="POST")
        except TwilioGatewayError:  # network failures included: the peer's call is over too
            log.info("peer leg %s already ended", leg.call_sid)
    return True


def peer_left_before_caller(session: Session, req: PeerRequest) -> bool:
    """The peer hung up in the room before the caller's redirect got there: the caller waits again, in their place.

    Returns False when that is not what happened (the caller's connect comes once, before the room).
    """
    if req.status != "ended" or req.peer_id is None:
        return False
    leg = session.scalar(select(RingLeg).where(RingLeg.request_id == req.id, RingLeg.peer_id == req.peer_id,
                                               RingLeg.status == "completed"))
    if leg is None:
        return False
    leg.status = "dropped"  # a return, as for a line that dropped before the room (times_back counts it)
    req.status = "waiting"  # arrived_at unchanged: the line is ordered by it
    req.peer_id = None
    req.connected_at = None
    req.ended_at = None
    session.commit()
    return True


def caller_call_over(session: Session, req: PeerRequest, now: datetime) -> None:
    """The caller's side of a connected call ended."""
    if req.status == "connected":
        req.status = "ended"
        req.ended_at = now
        session.commit()


def request_for_call(session: Session, req_id: int, call_sid: str) -> PeerRequest | None:
    """A caller's request, only when it belongs to this call (never act on another caller's)."""
    req = by_id(session, PeerRequest, req_id)
    return req if req is not None and req.call_sid == call_sid else None


def leg_for_call(session: Session, leg_id: int, call_sid: str) -> tuple[RingLeg, PeerRequest, Peer] | None:
    """A peer's ringing leg with its request and peer, only when this call is that leg (or its SID is not known yet)."""
    leg = by_id(session, RingLeg, leg_id)
    if leg is None or (leg.call_sid and leg.call_sid != call_sid):
        return None
    req = session.get(PeerRequest, leg.request_id)
    peer = session.get(Peer, leg.peer_id)
    if req is None or peer is None:
        return None
    return leg, req, peer
