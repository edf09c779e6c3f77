"""A peer is never alone with a caller in crisis: the peer's in-call menu, the warm hand-off to the
crisis line, the supervisor's backup, and supervisors or trainees listening in from the live board.

The caller and the peer meet in a private conference: a live call's (:func:`callflows.routing.room_name`)
or a callback's (:func:`callflows.callbacks.room_name`); the rules here work on either through
:class:`~callflows.rooms.Room`, so a called-back caller is never alone with their peer either. The
caller's leg ends the room when it leaves; the peer's does not, and the peer's ``<Dial>`` has
``hangupOnStar``: pressing ``*`` takes the peer out of the room to a private menu while the
caller stays in it and hears that their peer is still with them (a participant announcement).
From the menu the line adds the crisis line (``CRISIS_NUMBER``) to the room through the
Conference Participants API, or rings the supervisor with a whisper; the peer then goes back
to the same room. A supervisor or trainee started from the live board is added as a participant
that always starts muted (a coach hears the peer's leg only: ``coaching`` with the peer's call).

Every outbound leg is a row (:class:`~models.escalation.Handoff`,
:class:`~models.escalation.MonitorSession`) stored and committed before the REST call, so its
status callback always finds it. When the peer's leg ends, the caller is never left alone in
the room: with no crisis counselor on the line or on the way, the caller's call is moved on to
the goodbye (the caller's Dial action URL); when a counselor's leg ends after the peer has
left, the same. When the caller leaves, every leg still ringing for them is stopped.
"""
from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows import rooms
from callflows.calls import ANSWERED_CALL_STATUSES, FINAL_CALL_STATUSES, by_id, record_event
from callflows.errors import CallflowError, TwilioGatewayError
from callflows.rooms import Room
from callflows.services import Services
from callflows.shifts import on_call_supervisors
from models import AuditEntry, Call, CallEvent, Peer, StaffUser, utcnow
from models.escalation import Handoff, MonitorSession
from models.tables import PeerRequest, RingLeg

log = logging.getLogger(__name__)

OPEN_HANDOFFS = ("ringing", "answered", "joined")
OPEN_MONITORS = ("ringing", "live")
# The peer's private in-call menu: key -> what it does. 9, the crisis key everywhere on the line,
# also adds the crisis line here (to the caller's room: the peer's own leg is never dialled away).
PEER_MENU = {"1": "crisis", "2": "supervisor", "3": "back", "9": "crisis"}
# A supervisor in the room presses * for theirs.
# How many supervisors a peer's one request for help rings, one after the other, before the
# peer is told nobody answered: each waits SUPERVISOR_ANSWER_SECONDS, and a peer with a caller
# in crisis should not wait through more than a few.
SUPERVISOR_CHAIN = 3
SUPERVISOR_MENU = {"1": "join", "2": "coach", "3": "leave"}
MONITOR_CHANGES = ("speak", "speak_to_both", "coach", "end")


class EscalationError(CallflowError):
    """An in-call request cannot be carried out (the call is over, no number to ring)."""


# URLs Twilio fetches (built from the routes, as jobs and threads do) --------------------------


def handoff_status_url(svc: Services, handoff: Handoff) -> str:
    """Status callback of a hand-off's leg."""
    return svc.public_url("routing.handoff_status", handoff_id=handoff.id)


def monitor_status_url(svc: Services, monitor: MonitorSession) -> str:
    """Status callback of a monitor session's leg."""
    return svc.public_url("routing.monitor_status", monitor_id=monitor.id)


def peer_notice_url(svc: Services, room: Room, what: str) -> str:
    """An announcement only the peer hears."""
    return room.url(svc, "peer_notice", what=what)


def caller_notice_url(svc: Services, room: Room) -> str:
    """The announcement the caller hears while their peer is in the in-call menu."""
    return room.url(svc, "caller_notice")


# Who is in the room ------------------------------------------------------------------------


def peer_leg(session: Session, req: PeerRequest) -> RingLeg | None:
    """The accepted leg of the peer who took this caller (None before anyone accepted)."""
    return rooms.peer_leg(session, req)


def peer_was_in_room(session: Session, leg: RingLeg) -> bool:
    """True when this accepted peer opened the in-call menu (so they were in the room with their caller)."""
    req = session.get(PeerRequest, leg.request_id)
    if req is None or req.connected_at is None or leg.status != "accepted":
        return False
    menu = session.scalar(select(CallEvent.id).join(Call, Call.id == CallEvent.call_id)
                          .where(Call.call_sid == req.call_sid, CallEvent.node == "in_call", CallEvent.input == "*",
                                 CallEvent.at >= req.connected_at).limit(1))
    return menu is not None


def in_conversation(room: Room | None) -> bool:
    """True while the caller and their peer are connected (the room exists)."""
    return room is not None and room.talking


def _as_room(where: Room | PeerRequest) -> Room:
    # A live request is enough where the peer's leg is not needed (the caller's side, the board).
    return where if isinstance(where, Room) else Room(req=where)


def open_handoffs(session: Session, room: Room, kind: str | None = None) -> list[Handoff]:
    """Hand-offs of this call still ringing or on the line."""
    query = select(Handoff).where(rooms.in_room(Handoff, room), Handoff.status.in_(OPEN_HANDOFFS))
    if kind:
        query = query.where(Handoff.kind == kind)
    return list(session.scalars(query.order_by(Handoff.id)))


def handoff_state(session: Session, where: Room | PeerRequest) -> str:
    """What the board shows: the latest hand-off of the call and its state, or an empty string."""
    latest = session.scalars(select(Handoff).where(rooms.in_room(Handoff, _as_room(where)))
                             .order_by(Handoff.id.desc())).first()
    return f"{latest.kind}: {latest.status.replace('_', ' ')}" if latest else ""


def _note(session: Session, room: Room, received: str | None, detail: str) -> None:
    """One step of the in-call help: on a live caller's call (their path); a callback's legs have no call row,
    so there it is logged (its hand-offs and sessions are rows of their own)."""
    if room.event_sid:
        record_event(session, room.event_sid, "in_call", received, detail)
    else:
        log.info("%s: %s", room.label, detail)


def _conference_sid(svc: Services, room: Room) -> str | None:
    try:
        return svc.twilio.conference_sid(room.name)
    except TwilioGatewayError:
        log.warning("could not look up the room of %s", room.label, exc_info=True)
        return None


def _announce(svc: Services, room: Room, call_sid: str | None, url: str) -> bool:
    """Play ``url`` to one participant of the caller's room; False when that is not possible."""
    if not call_sid:
        return False
    conference = _conference_sid(svc, room)
    if conference is None:
        return False
    try:
        svc.twilio.update_participant(conference, call_sid, announce_url=url, announce_method="POST")
    except TwilioGatewayError:  # the participant is not in the room right now (the peer in their menu)
        log.info("announcement to %s in room %s not played", call_sid, room.name)
        return False
    return True


def tell_peer(session: Session, svc: Services, room: Room, what: str) -> bool:
    """A notice only the peer hears (``what`` names it): announced in the room, or, while the peer is
    out of the room (still in the in-call menu), said as their call is moved back into it."""
    peer_call = room.peer_call_sid
    if not peer_call:
        return False
    if _announce(svc, room, peer_call, peer_notice_url(svc, room, what)):
        return True
    try:
        svc.twilio.update_call(peer_call, url=room.url(svc, "rejoin", what=what), method="POST")
    except TwilioGatewayError:  # the peer has hung up
        log.info("peer of %s not told %s", room.label, what)
        return False
    return True


# The peer's in-call menu ---------------------------------------------------------------------


def peer_stepped_out(session: Session, svc: Services, room: Room, now: datetime) -> bool:
    """The peer pressed ``*``: True (menu) while the caller is still in the room, whom the line then reassures."""
    if not in_conversation(room):
        return False
    try:
        conference = svc.twilio.conference_sid(room.name)
    except TwilioGatewayError:  # unknown: the rows say the caller is there, so the peer gets the menu
        log.warning("could not look up the room of %s", room.label, exc_info=True)
        conference = ""
    if conference is None:  # the room is gone: the caller left a moment ago
        return False
    _note(session, room, "*", "peer menu")
    if room.attempt is not None and room.attempt.peer_stepped_out_at is None:
        # Kept: a peer whose call ends while out of the room had met their caller (callbacks.peer_leg_ended).
        room.attempt.peer_stepped_out_at = now
    session.commit()
    try:
        if conference and room.caller_call_sid:
            svc.twilio.update_participant(conference, room.caller_call_sid, announce_url=caller_notice_url(svc, room),
                                          announce_method="POST")
    except TwilioGatewayError:
        log.warning("could not reassure the caller of %s", room.label, exc_info=True)
    return True


def add_crisis_line(session: Session, svc: Services, room: Room, now: datetime) -> Handoff:
    """Warm hand-off: dial CRISIS_NUMBER into the caller's room from the line's number (one at a time)."""
    if not in_conversation(room):
        raise EscalationError("the call is over")
    already = open_handoffs(session, room, "crisis")
    if already:
        return already[0]
    handoff = Handoff(**room.owner(), peer_id=room.peer_id, kind="crisis", status="ringing", created_at=now)
    session.add(handoff)
    session.flush()
    _note(session, room, "1", f"crisis line added (hand-off {handoff.id})")
    session.commit()  # stored before Twilio can call back
    try:
        handoff.call_sid = svc.twilio.add_participant(
            room.name, svc.settings.crisis_number, handoff_status_url(svc, handoff),
            timeout=svc.settings.crisis_answer_seconds, early_media=False, beep="false", muted=False,
            end_conference_on_exit=False, start_conference_on_enter=True)
    except TwilioGatewayError:
        log.exception("could not add the crisis line to %s", room.label)
        handoff.status = "failed"
        handoff.ended_at = now
    session.commit()
    return handoff


def supervisor_numbers(session: Session, svc: Services, now: datetime | None = None,
                       asking_peer_id: int | None = None) -> list[str]:
    """Who is rung for backup: the on-call supervisors of the rota, else SUPERVISOR_NUMBER, else a supervisor's phone."""
    on_call = on_call_supervisors(session, svc.vault, now or utcnow(), asking_peer_id)
    if on_call:
        return on_call
    if svc.settings.supervisor_number:
        return [svc.settings.supervisor_number]
    users = session.scalars(select(StaffUser).where(StaffUser.role == "supervisor", StaffUser.active.is_(True),
                                                    StaffUser.phone_encrypted.is_not(None)).order_by(StaffUser.id))
    return [svc.vault.decrypt_text(u.phone_encrypted) for u in users if u.phone_encrypted][:1]


def supervisor_chain(session: Session, svc: Services, now: datetime, asking_peer_id: int | None) -> list[str]:
    """The order in which supervisors are rung for a peer, one at a time: the on-call supervisors by the
    rota, then SUPERVISOR_NUMBER (when it is not one of them), at most :data:`SUPERVISOR_CHAIN` numbers."""
    numbers = supervisor_numbers(session, svc, now, asking_peer_id)
    fixed = svc.settings.supervisor_number
    if fixed and fixed not in numbers:
        numbers.append(fixed)
    return numbers[:SUPERVISOR_CHAIN]


def _unanswered_in_a_row(session: Session, room: Room) -> int:
    """How many supervisors were rung for this room since the last one who came (or since the call began)."""
    count = 0
    for handoff in reversed(session.scalars(select(Handoff).where(rooms.in_room(Handoff, room), Handoff.kind == "supervisor")
                                            .order_by(Handoff.id)).all()):
        if handoff.status not in ("no_answer", "failed"):
            break
        count += 1
    return count


def ask_supervisor(session: Session, svc: Services, room: Room, now: datetime) -> Handoff:
    """Ring the supervisor with a whisper ("A peer is asking for help. Press 1 to join.")."""
    if not in_conversation(room):
        raise EscalationError("the call is over")
    already = open_handoffs(session, room, "supervisor")
    if already:
        return already[0]
    return _ring_supervisor(session, svc, room, supervisor_chain(session, svc, now, room.peer_id)[:1], now)


def _ring_supervisor(session: Session, svc: Services, room: Room, numbers: list[str], now: datetime) -> Handoff:
    """A supervisor hand-off ringing the first of ``numbers`` (failed at once when there is none)."""
    handoff = Handoff(**room.owner(), peer_id=room.peer_id, kind="supervisor", status="ringing", created_at=now)
    session.add(handoff)
    session.flush()
    _note(session, room, "2", f"supervisor asked (hand-off {handoff.id})")
    session.commit()
    if not numbers:
        handoff.status = "failed"
        handoff.ended_at = now
        session.commit()
        return handoff
    try:
        handoff.call_sid = svc.twilio.create_call(
            numbers[0], svc.public_url("routing.supervisor_whisper", handoff_id=handoff.id),
            handoff_status_url(svc, handoff), timeout=svc.settings.supervisor_answer_seconds)
    except TwilioGatewayError:
        log.exception("could not ring the supervisor for %s", room.label)
        handoff.status = "failed"
        handoff.ended_at = now
    session.commit()
    return handoff


def _ring_next_supervisor(session: Session, svc: Services, room: Room, now: datetime) -> Handoff | None:
    """After a supervisor did not answer: ring the next one in the chain, if there is one; None when all were tried."""
    chain = supervisor_chain(session, svc, now, room.peer_id)
    tried = _unanswered_in_a_row(session, room)
    while tried < len(chain):
        handoff = _ring_supervisor(session, svc, room, [chain[tried]], now)
        if handoff.status == "ringing":
            return handoff
        tried += 1  # Twilio refused this one: go on down the chain
    return None


def handoff_for_call(session: Session, handoff_id: int, call_sid: str) -> tuple[Handoff, Room] | None:
    """A hand-off and its caller's room, only when ``call_sid`` is its leg (or its SID is not known yet)."""
    handoff = by_id(session, Handoff, handoff_id)
    if handoff is None or (handoff.call_sid and handoff.call_sid != call_sid):
        return None
    room = rooms.of_row(session, handoff)
    return (handoff, room) if room is not None else None


def supervisor_joins(session: Session, handoff: Handoff, room: Room, now: datetime) -> str | None:
    """The supervisor pressed 1: the peer's call SID to coach, or None when the call is over."""
    peer_call = room.peer_call_sid
    if not in_conversation(room) or not peer_call or handoff.status not in OPEN_HANDOFFS:
        return None
    handoff.status = "joined"
    handoff.answered_at = handoff.answered_at or now
    _note(session, room, None, f"supervisor joined as coach (hand-off {handoff.id})")
    session.commit()
    return peer_call


def handoff_status(session: Session, svc: Services, handoff: Handoff, room: Room, call_status: str,
                   now: datetime) -> None:
    """Status callback of a hand-off's leg: answered, or over (and then who must be told or moved on)."""
    if call_status in ANSWERED_CALL_STATUSES:
        if handoff.status == "ringing":
            handoff.status = "answered"
            handoff.answered_at = now
            session.commit()
            if handoff.kind == "crisis":
                _note(session, room, None, f"crisis counselor on the line (hand-off {handoff.id})")
                session.commit()
                tell_peer(session, svc, room, "crisis_answered")
        return
    if call_status not in FINAL_CALL_STATUSES or handoff.status not in OPEN_HANDOFFS:
        return
    # A supervisor who picked up but never pressed 1 did not come either.
    came = handoff.status == "joined" or (handoff.kind == "crisis" and handoff.status == "answered")
    handoff.status = "ended" if came else ("failed" if call_status == "failed" else "no_answer")
    handoff.ended_at = now
    _note(session, room, None, f"{handoff.kind} hand-off {handoff.id}: {handoff.status}")
    session.commit()
    if not came and in_conversation(room):
        # A peer asking for help is never left with one unanswered phone: the next supervisor
        # on call is rung, and the peer told so, before the crisis line is suggested.
        if handoff.kind == "supervisor" and _ring_next_supervisor(session, svc, room, now) is not None:
            tell_peer(session, svc, room, "supervisor_next")
            return
        tell_peer(session, svc, room, f"{handoff.kind}_no_answer")
    elif handoff.kind == "crisis" and not in_conversation(room):
        # The counselor hung up after the peer had left: never leave the caller alone in the room.
        _move_caller_on(session, svc, room)


# The ends of the call ------------------------------------------------------------------------


def _move_caller_on(session: Session, svc: Services, room: Room) -> None:
    """The caller is alone in the room: take them to the goodbye (their Dial action), if still there."""
    try:
        if svc.twilio.conference_sid(room.name) is None:  # the room ended with the caller
            return
    except TwilioGatewayError:  # unknown: try the move anyway (Twilio refuses it for a call that is over)
        log.warning("could not look up the room of %s", room.label, exc_info=True)
    if not room.caller_call_sid:
        return
    try:
        svc.twilio.update_call(room.caller_call_sid, url=room.url(svc, "caller_done"), method="POST")
    except TwilioGatewayError:  # their call is over already
        log.info("caller of %s is gone", room.label)


def _stop_ringing(session: Session, svc: Services, room: Room, now: datetime) -> None:
    """Stop the hand-off and monitor legs of this call that are still ringing."""
    legs: list[Handoff | MonitorSession] = [h for h in open_handoffs(session, room) if h.status == "ringing"]
    legs += list(session.scalars(select(MonitorSession).where(rooms.in_room(MonitorSession, room),
                                                              MonitorSession.status == "ringing")))
    for row in legs:
        row.status = "canceled"
        row.ended_at = now
        session.commit()  # marked first, so its own status callback finds nothing to do
        if row.call_sid:
            try:
                svc.twilio.update_call(row.call_sid, status="canceled")
            except TwilioGatewayError:
                log.info("leg %s ended already", row.call_sid)


def peer_leg_over(session: Session, svc: Services, where: Room | PeerRequest, now: datetime) -> None:
    """The peer's connected leg ended: the caller stays only with a crisis counselor on the line or on the way."""
    room = _as_room(where)
    crisis = open_handoffs(session, room, "crisis")
    if crisis:
        _note(session, room, None, "peer left; caller stays with the crisis line")
        session.commit()
        return
    _stop_ringing(session, svc, room, now)
    _move_caller_on(session, svc, room)


def caller_left(session: Session, svc: Services, where: Room | PeerRequest, now: datetime) -> None:
    """The caller's side of the call ended: stop every leg still ringing for them (the room ends with them)."""
    _stop_ringing(session, svc, _as_room(where), now)


# Listening in: supervisors from the live board, trainees shadowing ---------------------------------


def start_monitor(session: Session, svc: Services, where: Room | PeerRequest, mode: str, number: str, now: datetime,
                  staff_user_id: int | None = None, trainee: Peer | None = None) -> MonitorSession:
    """Add a listener to a live call from the line's number: always muted at first; a coach hears only the peer."""
    if mode not in ("listen", "coach", "join", "shadow"):
        raise ValueError(f"unknown monitor mode {mode!r}")
    room = where if isinstance(where, Room) else rooms.of_request(session, where)
    peer_call = room.peer_call_sid
    if not in_conversation(room) or not peer_call:
        raise EscalationError("the call is over")
    if not number:
        raise EscalationError("no phone number to ring")
    monitor = MonitorSession(**room.owner(), staff_user_id=staff_user_id, peer_id=room.peer_id,
                             trainee_peer_id=trainee.id if trainee else None, mode=mode, status="ringing",
                             started_at=now)
    session.add(monitor)
    session.flush()
    who = f"trainee peer {trainee.id}" if trainee else f"staff user {staff_user_id}"
    target_type, target_id = room.audit_target()
    session.add(AuditEntry(staff_user_id=staff_user_id, action=f"monitor_{mode}", target_type=target_type,
                           target_id=target_id, detail=f"monitor session {monitor.id} started by {who} ({mode})"))
    if room.event_sid:
        record_event(session, room.event_sid, "monitor", mode, f"monitor session {monitor.id}")
    session.commit()
    extra: dict[str, object] = {}
    if mode == "coach":
        extra = {"coaching": True, "call_sid_to_coach": peer_call}
    try:
        monitor.call_sid = svc.twilio.add_participant(
            room.name, number, monitor_status_url(svc, monitor), muted=True, beep="false", early_media=False,
            timeout=svc.settings.supervisor_answer_seconds, end_conference_on_exit=False,
            start_conference_on_enter=True, **extra)
    except TwilioGatewayError:
        log.exception("could not add a listener to %s", room.label)
        _end_monitor(session, monitor, "failed", now)
    session.commit()
    return monitor


def _end_monitor(session: Session, monitor: MonitorSession, status: str, now: datetime) -> None:
    monitor.status = status
    monitor.ended_at = now
    target_type, target_id = (("callback_attempt", monitor.callback_attempt_id) if monitor.callback_attempt_id
                              else ("peer_request", monitor.request_id))
    session.add(AuditEntry(staff_user_id=monitor.staff_user_id, action=f"monitor_{monitor.mode}_end",
                           target_type=target_type, target_id=target_id,
                           detail=f"monitor session {monitor.id} {status}"))
    session.commit()


def monitor_for_call(session: Session, monitor_id: int, call_sid: str) -> MonitorSession | None:
    """A monitor session, only when ``call_sid`` is its leg."""
    monitor = by_id(session, MonitorSession, monitor_id)
    return monitor if monitor is not None and monitor.call_sid in (None, call_sid) else None


def monitor_status(session: Session, svc: Services, monitor: MonitorSession, call_status: str,
                   now: datetime) -> None:
    """Status callback of a listener's leg: live (the peer is told, as configured), or over (end time stored)."""
    room = rooms.of_row(session, monitor)
    if call_status in ANSWERED_CALL_STATUSES and monitor.status == "ringing":
        monitor.status = "live"
        monitor.answered_at = now
        session.commit()
        if room is not None and svc.settings.monitor_notice != "none":
            tell_peer(session, svc, room, "trainee" if monitor.mode == "shadow" else "monitor")
    elif call_status in FINAL_CALL_STATUSES and monitor.status in OPEN_MONITORS:
        _end_monitor(session, monitor, "ended" if monitor.status == "live" else "no_answer", now)


def change_monitor(session: Session, svc: Services, monitor: MonitorSession, change: str,
                   staff_user_id: int | None) -> None:
    """From the board: speak (unmute), speak to both (no longer only a coach), coach the peer only, or end."""
    if change not in MONITOR_CHANGES:
        raise ValueError(f"unknown change {change!r}")
    room = rooms.of_row(session, monitor)
    if room is None or monitor.status not in OPEN_MONITORS or not monitor.call_sid:
        raise EscalationError("this session is over")
    target_type, target_id = room.audit_target()
    session.add(AuditEntry(staff_user_id=staff_user_id, action=f"monitor_{change}", target_type=target_type,
                           target_id=target_id, detail=f"monitor session {monitor.id}"))
    session.commit()
    try:
        if change == "end":
            svc.twilio.update_call(monitor.call_sid, status="completed")
            return
        conference = _conference_sid(svc, room)
        if conference is None:
            raise EscalationError("the call is over")
        if change == "speak":
            svc.twilio.update_participant(conference, monitor.call_sid, muted=False)
        elif change == "speak_to_both":
            svc.twilio.update_participant(conference, monitor.call_sid, muted=False, coaching=False)
        else:
            peer_call = room.peer_call_sid
            if not peer_call:
                raise EscalationError("the peer has left")
            svc.twilio.update_participant(conference, monitor.call_sid, coaching=True, call_sid_to_coach=peer_call)
    except TwilioGatewayError as exc:
        raise EscalationError(str(exc)) from exc
    if change in ("speak_to_both", "coach"):
        monitor.mode = "join" if change == "speak_to_both" else "coach"
        session.commit()


def monitored(session: Session, peer_id: int, limit: int = 10) -> list[MonitorSession]:
    """A peer's calls a supervisor or trainee listened to, newest first (shown on the peer's own page)."""
    return list(session.scalars(select(MonitorSession).where(MonitorSession.peer_id == peer_id,
                                                             MonitorSession.answered_at.is_not(None))
                                .order_by(MonitorSession.started_at.desc()).limit(limit)))
