"""Live peer routing: who to ring, atomic first pickup, peer state, the hold queue's data.

No Flask views here (they are in :mod:`ivr.routing_voice`); functions take a SQLAlchemy
session, the app's :class:`~ivr.services.Services` and ``now``, so tests drive time.

How "wrap-up passed" is noticed (two ways, on purpose):
- when a peer's call ends, an RQ job ``wrap_up_done`` is scheduled with ``Queue.enqueue_in``
  (workers run with the RQ scheduler), which frees the peer and offers the longest-waiting
  caller;
- every waitUrl poll of a waiting caller calls :func:`reconcile`, which frees any peer whose
  wrap-up is over by the clock, so a lost job or a stopped worker never strands a caller.
"""
from __future__ import annotations

import logging
import math
from datetime import datetime, timedelta, timezone

from redis.exceptions import RedisError
from rq import Queue
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ivr.services import Services, services
from ivr.twilio_client import TwilioGatewayError
from models import Peer, PeerStory, utcnow
from models.tables import PeerRequest, RingLeg
from queues.connection import DEFAULT_QUEUE

log = logging.getLogger(__name__)

RING_TIMEOUT_S = 20  # seconds a peer's phone rings before Twilio gives up (no-answer)
RETRY_SAME_PEER_AFTER = timedelta(minutes=2)  # a peer who missed this caller is not rung again at once
HISTORY_WINDOW = timedelta(hours=24)
HISTORY_CALLS = 20
ON_SHIFT = ("available", "busy", "wrap_up", "break")
LIVE_LEGS = ("ringing", "answered")
OPEN_REQUESTS = ("ringing", "waiting")
# What a caller may ask for -> the peer tag that matches (stories topics map the same way).
TOPIC_TAGS = {"medication": "medication-based-recovery", "pain": "chronic-pain"}
WRAP_UP_JOB = "ivr.routing.wrap_up_done"


def aware(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; every stored time is UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


# URLs Twilio fetches, from the routes themselves (jobs have an app context, no request)


def whisper_url(svc: Services, leg_id: int) -> str:
    """What Twilio fetches when a peer picks up."""
    return svc.public_url("routing.leg_whisper", leg_id=leg_id)


def leg_status_url(svc: Services, leg_id: int) -> str:
    """Status callback of a peer's leg (no-answer, completed...)."""
    return svc.public_url("routing.leg_status", leg_id=leg_id)


def caller_connect_url(svc: Services, req: PeerRequest) -> str:
    """Where the waiting caller is redirected once a peer accepted."""
    return svc.public_url("routing.caller_connect", req_id=req.id, lang=req.language)


def queue_name(language: str) -> str:
    """The Twilio queue callers of one language wait in (positions are per language)."""
    return f"peerline-{language}"


def room_name(req: PeerRequest) -> str:
    """The private conference of one caller and one peer."""
    return f"call-{req.id}"


# Peer selection -------------------------------------------------------------------------


def peers_on_shift(session: Session, language: str) -> int:
    """How many peers who speak ``language`` are signed on (available, busy, wrap-up or break)."""
    peers = session.scalars(select(Peer).where(Peer.active.is_(True), Peer.status.in_(ON_SHIFT)))
    return sum(1 for p in peers if language in (p.languages or []))


def _idle_key(peer: Peer) -> tuple[int, datetime, int]:
    # Longest idle first: never called yet, then the oldest end of last call; ties by
    # the time they became available, then id for a stable order.
    ended = aware(peer.last_call_ended_at)
    changed = aware(peer.status_changed_at) or datetime.min.replace(tzinfo=timezone.utc)
    return (0 if ended is None else 1, ended or changed, peer.id)


def pick_peers(session: Session, language: str, tag: str | None, limit: int,
               exclude: set[int] | frozenset[int] = frozenset()) -> list[Peer]:
    """Available peers for a caller: language match, wanted lived experience first (else any)."""
    candidates = [
        p for p in session.scalars(select(Peer).where(Peer.active.is_(True), Peer.status == "available"))
        if language in (p.languages or []) and p.id not in exclude
    ]
    if tag:
        tagged = [p for p in candidates if tag in (p.tags or [])]
        # Fallback to any peer only when nobody with that experience is free.
        candidates = tagged or candidates
    return sorted(candidates, key=_idle_key)[:limit]


def claim_peer(session: Session, peer_id: int, now: datetime) -> bool:
    """Atomically move an available peer to busy (one UPDATE; False if someone got there first)."""
    result = session.execute(
        update(Peer).where(Peer.id == peer_id, Peer.status == "available")
        .values(status="busy", status_changed_at=now)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_peer(session: Session, peer: Peer, now: datetime) -> None:
    """A peer who was rung but did not take the call is available again (it was not a call)."""
    if peer.status == "busy" and not _has_live_call(session, peer.id):
        peer.status = "available"
        peer.status_changed_at = now


def _has_live_call(session: Session, peer_id: int) -> bool:
    return bool(session.scalar(
        select(func.count()).select_from(RingLeg)
        .where(RingLeg.peer_id == peer_id, RingLeg.status.in_((*LIVE_LEGS, "accepted")))
    ))


# Requests and ringing -------------------------------------------------------------------


def open_request(session: Session, call_sid: str, call_id: int | None, language: str,
                 wanted_tag: str | None, arrived_at: datetime) -> PeerRequest:
    """A caller's request for a peer (a new one each time they ask)."""
    req = PeerRequest(call_sid=call_sid, call_id=call_id, language=language, wanted_tag=wanted_tag,
                      status="waiting", arrived_at=arrived_at)
    session.add(req)
    session.flush()
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
            session.refresh(peer)
            release_peer(session, peer, now)
            session.commit()
            continue
        rung += 1
    req.status = "ringing" if rung or _live_legs(session, req.id) else "waiting"
    session.commit()
    return rung


def _live_legs(session: Session, request_id: int) -> list[RingLeg]:
    return list(session.scalars(
        select(RingLeg).where(RingLeg.request_id == request_id, RingLeg.status.in_(LIVE_LEGS)).order_by(RingLeg.id)
    ))


def _recently_missed(session: Session, request_id: int, now: datetime) -> set[int]:
    legs = session.scalars(select(RingLeg).where(RingLeg.request_id == request_id,
                                                 RingLeg.status == "no_answer"))
    return {leg.peer_id for leg in legs if (aware(leg.ended_at) or now) > now - RETRY_SAME_PEER_AFTER}


def dispatch(session: Session, svc: Services, now: datetime) -> int:
    """Offer free peers to waiting callers and due callbacks, in one order by arrival; returns calls placed."""
    from ivr import callbacks  # imports this module; due callbacks share the callers' line

    rung = 0
    waiting = session.scalars(
        select(PeerRequest).where(PeerRequest.status == "waiting").order_by(PeerRequest.arrived_at, PeerRequest.id)
    ).all()
    for req in waiting:
        if not session.scalar(select(func.count()).select_from(Peer).where(Peer.status == "available")):
            break
        # Callbacks that arrived before this caller go first: a callback keeps its place, never jumps it.
        rung += callbacks.offer_due(session, svc, now, arrived_before=aware(req.arrived_at))
        rung += ring(session, svc, req, now, exclude=_recently_missed(session, req.id, now))
    return rung + callbacks.offer_due(session, svc, now)


def _end_legs(session: Session, svc: Services, legs: list[RingLeg], new_status: str, now: datetime) -> None:
    """Hang up other peers' legs: cancel a leg still ringing, complete one in its whisper."""
    for leg in legs:
        previous = leg.status
        leg.status = new_status
        leg.ended_at = now
        session.commit()  # marked first, so its own status callback finds nothing to do
        if leg.call_sid:
            try:
                svc.twilio.update_call(leg.call_sid, status="canceled" if previous == "ringing" else "completed")
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
    if result.rowcount != 1:  # type: ignore[attr-defined]
        outcome = "taken" if req.status in ("connected", "ended") else "caller_gone"
        _close_leg(session, leg, outcome, now)
        return outcome
    leg.status = "accepted"
    session.commit()
    others = [other for other in _live_legs(session, req.id) if other.id != leg.id]
    _end_legs(session, svc, others, "canceled", now)
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


def leg_ended(session: Session, svc: Services, leg: RingLeg, call_status: str, now: datetime) -> None:
    """A peer's leg reached a final status: free the peer, end the call, or try the next peer."""
    req = session.get(PeerRequest, leg.request_id)
    assert req is not None
    peer = session.get(Peer, leg.peer_id)
    if leg.status == "accepted":
        leg.status = "completed"
        leg.ended_at = now
        if req.status == "connected":
            req.status = "ended"
            req.ended_at = now
        if peer is not None:
            start_wrap_up(session, svc, peer, now)
        session.commit()
        return
    if leg.status in LIVE_LEGS:
        # Voicemail, no key pressed, hung up in the whisper, busy, failed: all count as no answer.
        _close_leg(session, leg, "no_answer", now)
        if req.status == "ringing" and not _live_legs(session, req.id):
            ring(session, svc, req, now, exclude=_recently_missed(session, req.id, now))
        dispatch(session, svc, now)
        return
    # Already closed (canceled, taken, caller gone): only make sure the peer is not stuck.
    if peer is not None:
        release_peer(session, peer, now)
        session.commit()


def caller_left(session: Session, svc: Services, req: PeerRequest, status: str, now: datetime) -> None:
    """The caller hung up, or chose a callback, a message or the crisis line: stop ringing for them."""
    if req.status not in OPEN_REQUESTS:
        return
    req.status = status
    req.ended_at = now
    session.commit()
    _end_legs(session, svc, _live_legs(session, req.id), "caller_gone", now)
    dispatch(session, svc, now)


def caller_call_over(session: Session, req: PeerRequest, now: datetime) -> None:
    """The caller's side of a connected call ended."""
    if req.status == "connected":
        req.status = "ended"
        req.ended_at = now
        session.commit()


# Peer state -----------------------------------------------------------------------------


def start_wrap_up(session: Session, svc: Services, peer: Peer, now: datetime) -> None:
    """After a call (live or callback): wrap-up time, then available again (see module docstring)."""
    peer.status = "wrap_up"
    peer.status_changed_at = now
    peer.last_call_ended_at = now
    peer.calls_in_a_row = (peer.calls_in_a_row or 0) + 1
    session.commit()
    started = now.timestamp()
    try:
        Queue(DEFAULT_QUEUE, connection=svc.redis).enqueue_in(
            timedelta(seconds=svc.settings.peer_wrapup_seconds), WRAP_UP_JOB, peer.id, started,
            job_id=f"wrap-up-{peer.id}-{int(started * 1000)}",
        )
    except (RedisError, OSError) as exc:
        # The waitUrl reconciler still frees the peer by the clock.
        log.warning("could not schedule wrap-up end for peer %s: %s", peer.id, exc)


def finish_wrap_up(session: Session, svc: Services, peer: Peer, now: datetime) -> None:
    """Wrap-up over: available (or a break after N calls in a row), then offer waiting callers."""
    if peer.status != "wrap_up":
        return
    after = svc.settings.peer_break_after_calls
    if after and (peer.calls_in_a_row or 0) >= after:
        peer.status = "break"
        peer.calls_in_a_row = 0
    else:
        peer.status = "available"
    peer.status_changed_at = now
    session.commit()
    dispatch(session, svc, now)


def wrap_up_done(peer_id: int, started: float) -> str:
    """RQ job: the wrap-up that began at ``started`` (epoch seconds) has passed for ``peer_id``."""
    svc = services()
    with svc.sessions() as session:
        peer = session.get(Peer, peer_id)
        if peer is None or peer.status != "wrap_up":
            return "nothing to do"
        began = aware(peer.status_changed_at)
        if began is None or abs(began.timestamp() - started) > 0.001:  # a later call's wrap-up has its own job
            return "superseded"
        finish_wrap_up(session, svc, peer, utcnow())
        return peer.status


def reconcile(session: Session, svc: Services, now: datetime) -> None:
    """Free peers whose wrap-up is over by the clock, then offer waiting callers."""
    due = now - timedelta(seconds=svc.settings.peer_wrapup_seconds)
    for peer in session.scalars(select(Peer).where(Peer.status == "wrap_up")).all():
        if (aware(peer.status_changed_at) or now) <= due:
            finish_wrap_up(session, svc, peer, now)
    dispatch(session, svc, now)


def set_status(session: Session, svc: Services, peer: Peer, status: str, now: datetime) -> None:
    """A peer's own choice (by phone): available, break or signed off."""
    if peer.status in ("busy",) and _has_live_call(session, peer.id):
        return  # never drop a live call's state; the status callback moves them on
    peer.status = status
    peer.status_changed_at = now
    if status in ("break", "signed_off"):
        peer.calls_in_a_row = 0
    session.commit()


def offer_after_delay(svc: Services, seconds: int = 15) -> None:
    """Offer waiting callers soon (a peer who just signed on by phone must hang up first)."""
    try:
        Queue(DEFAULT_QUEUE, connection=svc.redis).enqueue_in(timedelta(seconds=seconds), "ivr.routing.dispatch_job")
    except (RedisError, OSError) as exc:
        log.warning("could not schedule dispatch: %s", exc)


def dispatch_job() -> int:
    """RQ job: offer free peers to waiting callers."""
    svc = services()
    with svc.sessions() as session:
        return dispatch(session, svc, utcnow())


# Hold queue -----------------------------------------------------------------------------


def waiting_count(session: Session) -> int:
    """Callers waiting for a peer right now (ringing or on hold)."""
    return int(session.scalar(
        select(func.count()).select_from(PeerRequest).where(PeerRequest.status.in_(OPEN_REQUESTS))
    ) or 0)


def expected_wait_minutes(session: Session, position: int, now: datetime) -> int | None:
    """Expected wait from recent history: average wait of recent connected callers x position."""
    rows = session.execute(
        select(PeerRequest.arrived_at, PeerRequest.connected_at)
        .where(PeerRequest.connected_at.is_not(None), PeerRequest.connected_at > now - HISTORY_WINDOW)
        .order_by(PeerRequest.connected_at.desc()).limit(HISTORY_CALLS)
    ).all()
    if not rows:
        return None
    waits = [((aware(c) or now) - (aware(a) or now)).total_seconds() for a, c in rows]
    average = max(30.0, sum(waits) / len(waits))  # never promise less than half a minute
    return max(1, math.ceil(average * max(1, position) / 60))


def hold_story(session: Session, req: PeerRequest) -> PeerStory | None:
    """The next approved story for a waiting caller (rotates on each wait document)."""
    stories = session.scalars(
        select(PeerStory).where(PeerStory.language == req.language, PeerStory.status == "approved",
                                PeerStory.consent_given.is_(True)).order_by(PeerStory.id)
    ).all()
    if not stories:
        return None
    story = stories[req.hold_plays % len(stories)]
    req.hold_plays += 1
    session.commit()
    return story
