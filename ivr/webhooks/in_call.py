"""In-call help: the peer's ``*`` menu, the announcements, the supervisor's leg, the hand-off and listener callbacks.

The rules are :mod:`callflows.escalation`. A live call's routes live on the ``routing`` blueprint
(``/peer``): the peer's ``<Dial hangupOnStar>`` comes back to :func:`in_call_after` when the peer
presses ``*``; the caller meanwhile hears :func:`in_call_caller_notice` (a participant
announcement) and never leaves the room. A callback's peer has the same menu: their Dial's
action is :func:`callback_peer_after` (``callbacks.peer_after``), and the menu's routes are the same
handlers on the ``callbacks`` blueprint (``/callbacks/attempt/<id>/...``), reached through one
:class:`PeerSide` per kind of room. The supervisor is rung with a whisper and joins as a coach of
the peer's leg; their own ``*`` lets them speak to both or leave.
"""
from __future__ import annotations

from dataclasses import dataclass

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows import callbacks, escalation, line, records, rooms, routing
from callflows.calls import by_id
from callflows.errors import CallflowError
from callflows.rooms import Room
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import Speaker, empty, to_response
from ivr.webhooks.blueprints import callbacks as callbacks_bp, routing as bp
from ivr.webhooks.context import caller_flow, caller_gone_wrap_up, peer_flow, public_url
from ivr.webhooks.failures import Audience, heard_by
from models import Peer, utcnow
from models.escalation import Handoff
from models.tables import CallbackAttempt, RingLeg

# What the peer may be told in the room, by the name in the URL -> the phrase.
PEER_NOTICES = {"crisis_answered": "notice_crisis_answered", "crisis_no_answer": "notice_crisis_no_answer",
                "supervisor_joined": "notice_supervisor_joined",
                "supervisor_no_answer": "notice_supervisor_no_answer",
                "supervisor_next": "notice_supervisor_next",
                "monitor": "notice_monitor", "trainee": "notice_trainee"}


def _hung_up() -> bool:
    """Twilio requests a Dial's action after a hang-up too (CallStatus completed); nobody hears the answer."""
    return request.form.get("CallStatus", "") in ("completed", "canceled", "failed", "busy", "no-answer")


@dataclass
class PeerSide:
    """The peer's side of a room as a webhook of the peer's own call finds it: a live call's or a callback's."""

    room: Room
    speaker: Speaker
    in_call: bool  # the peer's leg is still theirs in this conversation (they accepted, and have not left)
    choice_url: str  # their in-call menu's answer
    after_url: str  # their Dial's action (``*`` or the end of the room)


def live_side(leg_id: int) -> PeerSide | None:
    """The peer's side of a live call, only when this request comes from that peer's leg."""
    session = get_session()
    found = routing.leg_for_call(session, leg_id, request.form.get("CallSid", ""))
    if found is None:
        return None
    leg, req, peer = found
    return PeerSide(Room(req=req, leg=leg), Speaker(peer_flow(peer)), leg.status == "accepted",
                    public_url("routing.in_call_choice", leg_id=leg.id),
                    public_url("routing.in_call_after", leg_id=leg.id))


def callback_side(attempt: CallbackAttempt) -> PeerSide:
    """The peer's side of a callback attempt's room (the caller checked the leg: :func:`callbacks.attempt_for_call`)."""
    session = get_session()
    peer = session.get(Peer, attempt.peer_id) if attempt.peer_id else None
    return PeerSide(rooms.of_attempt(session, attempt), Speaker(peer_flow(peer)), attempt.stage == "connected",
                    public_url("callbacks.in_call_choice", attempt_id=attempt.id),
                    public_url("callbacks.peer_after", attempt_id=attempt.id))


def _callback_side(attempt_id: int) -> PeerSide | None:
    attempt = callbacks.attempt_for_call(get_session(), attempt_id, "peer", request.form.get("CallSid", ""))
    return callback_side(attempt) if attempt is not None else None


def back_to_caller(side: PeerSide, lines: list[str]) -> VoiceResponse:
    """Say ``lines`` to the peer, then back into the room (``*`` steps out again; the room stays up without them)."""
    return side.speaker.peer_conference(lines, side.room.name, side.after_url)


def peer_menu(side: PeerSide) -> VoiceResponse:
    """The peer's private in-call menu."""
    return side.speaker.keypad([side.speaker.text("in_call_menu")], side.choice_url, finish_on_key="", num_digits=1)


def _caller_gone(side: PeerSide) -> VoiceResponse:
    return side.speaker.say_then_hangup([side.speaker.text("peer_caller_gone")])


def _choice(side: PeerSide | None) -> Response:
    """1 (or 9) adds the crisis line, 2 rings the supervisor, 3 (or silence) goes back; another key repeats."""
    if side is None:
        return to_response(empty())
    speaker = side.speaker
    if not escalation.in_conversation(side.room) or not side.in_call:
        return to_response(_caller_gone(side))
    digits = request.form.get("Digits", "")
    choice = escalation.PEER_MENU.get(digits, "back" if not digits else "repeat")
    if choice == "repeat":
        return to_response(peer_menu(side))
    session, now = get_session(), utcnow()
    lines = [speaker.text("in_call_back")]
    try:
        if choice == "crisis":
            handoff = escalation.add_crisis_line(session, services(), side.room, now)
            lines = [speaker.text("in_call_failed" if handoff.status == "failed" else "in_call_crisis_calling")]
        elif choice == "supervisor":
            handoff = escalation.ask_supervisor(session, services(), side.room, now)
            lines = [speaker.text("in_call_no_supervisor" if handoff.status == "failed"
                                  else "in_call_supervisor_calling")]
    except CallflowError:  # the caller left while the peer chose
        return to_response(_caller_gone(side))
    return to_response(back_to_caller(side, lines))


def _rejoin(side: PeerSide | None) -> Response:
    """A notice for a peer who was out of the room (the line moved their call here), then back to the caller."""
    if side is None:
        return to_response(empty())
    if not escalation.in_conversation(side.room) or not side.in_call:
        return to_response(_caller_gone(side))
    phrase = PEER_NOTICES.get(request.args.get("what", ""))
    return to_response(back_to_caller(side, [side.speaker.text(phrase)] if phrase else []))


def _peer_notice(peer_id: int | None) -> Response:
    """An announcement only the peer hears, in their language, named by ``what``."""
    peer = get_session().get(Peer, peer_id) if peer_id else None
    speaker = Speaker(peer_flow(peer))
    what = request.args.get("what", "")
    phrase = PEER_NOTICES.get(what)
    if phrase is None:
        return to_response(empty())
    tone = what in ("monitor", "trainee") and services().settings.monitor_notice == "tone"
    return to_response(speaker.announcement([speaker.text(phrase)], tone=tone))


def _caller_notice() -> Response:
    """What the caller hears while their peer is in the in-call menu (their own language, from the query)."""
    speaker = Speaker(caller_flow(request.args.get("lang")))
    return to_response(speaker.announcement([speaker.text("caller_peer_still_here")]))


# The peer's side of a live call ------------------------------------------------------------------


@bp.post("/leg/<int:leg_id>/in-call")
@heard_by(Audience.LEG)
def in_call_after(leg_id: int) -> Response:
    """The peer's Dial ended: ``*`` (their private menu, the caller reassured) or the conversation is over."""
    side = live_side(leg_id)
    if side is None:
        return to_response(empty())
    session, speaker, leg = get_session(), side.speaker, side.room.leg
    assert leg is not None
    if not side.in_call:
        return to_response(empty() if _hung_up() else speaker.say_then_hangup([speaker.text("peer_thanks")]))
    if _hung_up():
        # The peer hung up in the room: their side is over (wrap-up), and the caller is never left alone in it.
        line.peer_left_room(session, services(), leg, utcnow())
        return to_response(empty())
    if escalation.peer_stepped_out(session, services(), side.room, utcnow()):
        return to_response(peer_menu(side))
    # The room ended with the caller: wrap-up starts with the call record, as after any call.
    line.peer_in_room(session, services(), leg, utcnow())
    if side.room.req is None:
        return to_response(speaker.say_then_hangup([speaker.text("peer_caller_gone")]))
    return to_response(caller_gone_wrap_up(speaker, leg, side.room.req))


@bp.post("/leg/<int:leg_id>/in-call/choice")
@heard_by(Audience.LEG)
def in_call_choice(leg_id: int) -> Response:
    """1 adds the crisis line, 2 rings the supervisor, 3 (or silence) goes back to the caller; another key repeats."""
    return _choice(live_side(leg_id))


@bp.post("/leg/<int:leg_id>/in-call/notice")  # not /notice: that is peer_legs.leg_notice, on the same blueprint
@heard_by(Audience.NOBODY)
def in_call_peer_notice(leg_id: int) -> Response:
    """An announcement only the peer hears (a counselor answered, nobody answered, someone is listening)."""
    leg = by_id(get_session(), RingLeg, leg_id)
    return _peer_notice(leg.peer_id if leg is not None else None)


@bp.post("/leg/<int:leg_id>/rejoin")
@heard_by(Audience.LEG)
def in_call_rejoin(leg_id: int) -> Response:
    """A notice for a peer who was out of the room (the line moved their call here), then back to the caller."""
    return _rejoin(live_side(leg_id))


@bp.post("/caller/<int:req_id>/notice")
@heard_by(Audience.NOBODY)
def in_call_caller_notice(req_id: int) -> Response:
    """What the caller hears while their peer is in the in-call menu (their own language, from the query)."""
    return _caller_notice()


# The peer's side of a callback (the rest of its legs: callback_legs) --------------------------------


@callbacks_bp.post("/attempt/<int:attempt_id>/peer/after", endpoint="peer_after")
@heard_by(Audience.LEG)
def callback_peer_after(attempt_id: int) -> Response:
    """The callback peer's Dial ended: ``*`` (their in-call menu, as on a live call), a hang-up (the caller is never
    left alone in the room), or the room ended: after a connected callback, wrap-up starts with the call record."""
    session = get_session()
    attempt = callbacks.attempt_for_call(session, attempt_id, "peer", request.form.get("CallSid", ""))
    if attempt is None:
        speaker = Speaker(peer_flow(None))
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    side = callback_side(attempt)
    speaker = side.speaker
    if _hung_up():
        # Nobody hears this answer; the caller they leave stays only with a crisis counselor.
        line.callback_peer_hung_up(session, services(), attempt, utcnow())
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    if escalation.peer_stepped_out(session, services(), side.room, utcnow()):
        return to_response(peer_menu(side))
    if attempt.stage == "caller_ringing" or (attempt.stage == "connected" and attempt.caller_joined_at is None):
        # * while the caller's phone rings or they hear the greeting: back into the room to wait for them.
        return to_response(back_to_caller(side, [speaker.text("callback_peer_calling")]))
    if records.call_of_callback(session, attempt) is not None:
        # As after a live call: the outcome (1-5), then referral yes or no.
        return to_response(speaker.record_prompt([], public_url("callbacks.peer_record", attempt_id=attempt_id)))
    return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))


@callbacks_bp.post("/attempt/<int:attempt_id>/peer/in-call/choice", endpoint="in_call_choice")
@heard_by(Audience.LEG)
def callback_in_call_choice(attempt_id: int) -> Response:
    """On a callback: 1 adds the crisis line, 2 rings the supervisor, 3 (or silence) goes back to the caller."""
    return _choice(_callback_side(attempt_id))


@callbacks_bp.post("/attempt/<int:attempt_id>/peer/in-call/notice", endpoint="in_call_peer_notice")
@heard_by(Audience.NOBODY)
def callback_in_call_peer_notice(attempt_id: int) -> Response:
    """On a callback: an announcement only the peer hears."""
    attempt = by_id(get_session(), CallbackAttempt, attempt_id)
    return _peer_notice(attempt.peer_id if attempt is not None else None)


@callbacks_bp.post("/attempt/<int:attempt_id>/peer/rejoin", endpoint="in_call_rejoin")
@heard_by(Audience.LEG)
def callback_in_call_rejoin(attempt_id: int) -> Response:
    """On a callback: a notice for a peer who was out of the room, then back to the caller."""
    return _rejoin(_callback_side(attempt_id))


@callbacks_bp.post("/attempt/<int:attempt_id>/caller/notice", endpoint="in_call_caller_notice")
@heard_by(Audience.NOBODY)
def callback_in_call_caller_notice(attempt_id: int) -> Response:
    """On a callback: what the caller hears while their peer is in the in-call menu."""
    return _caller_notice()


# The supervisor's leg -------------------------------------------------------------------------


def _handoff() -> tuple[Handoff, Room] | None:
    return escalation.handoff_for_call(get_session(), int((request.view_args or {})["handoff_id"]),
                                       request.form.get("CallSid", ""))


def _supervisor_speaker(room: Room | None) -> Speaker:
    peer = get_session().get(Peer, room.peer_id) if room is not None and room.peer_id else None
    return Speaker(peer_flow(peer))


def _as_coach(speaker: Speaker, handoff: Handoff, room: Room, coach: str | None) -> VoiceResponse:
    return speaker.coach_conference([speaker.text("supervisor_coaching" if coach else "supervisor_both")],
                                    room.name, public_url("routing.supervisor_after", handoff_id=handoff.id), coach)


@bp.post("/handoff/<int:handoff_id>/whisper")
@heard_by(Audience.LEG)
def supervisor_whisper(handoff_id: int) -> Response:
    """The supervisor picked up: "A peer is asking for help. Press 1 to join."."""
    found = _handoff()
    if found is None:
        return to_response(empty())
    handoff, room = found
    speaker = _supervisor_speaker(room)
    if handoff.status not in escalation.OPEN_HANDOFFS or not escalation.in_conversation(room):
        return to_response(speaker.say_then_hangup([speaker.text("supervisor_call_over")]))
    return to_response(speaker.whisper(speaker.text("supervisor_whisper"),
                                       public_url("routing.supervisor_answer", handoff_id=handoff.id),
                                       [speaker.text("peer_thanks")]))


@bp.post("/handoff/<int:handoff_id>/answer")
@heard_by(Audience.LEG)
def supervisor_answer(handoff_id: int) -> Response:
    """Only 1 joins, as a coach heard by the peer alone; the peer is told."""
    found = _handoff()
    if found is None:
        return to_response(empty())
    handoff, room = found
    speaker = _supervisor_speaker(room)
    if request.form.get("Digits") != "1":
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    session = get_session()
    coach = escalation.supervisor_joins(session, handoff, room, utcnow())
    if coach is None:
        return to_response(speaker.say_then_hangup([speaker.text("supervisor_call_over")]))
    escalation.tell_peer(session, services(), room, "supervisor_joined")
    return to_response(_as_coach(speaker, handoff, room, coach))


@bp.post("/handoff/<int:handoff_id>/after")
@heard_by(Audience.LEG)
def supervisor_after(handoff_id: int) -> Response:
    """The supervisor pressed ``*`` (their choices), or the room ended."""
    found = _handoff()
    if found is None or _hung_up():
        return to_response(empty())
    handoff, room = found
    speaker = _supervisor_speaker(room)
    if not escalation.in_conversation(room):
        return to_response(speaker.say_then_hangup([speaker.text("supervisor_call_over")]))
    return to_response(speaker.keypad([speaker.text("supervisor_menu")],
                                      public_url("routing.supervisor_choice", handoff_id=handoff.id),
                                      finish_on_key="", num_digits=1))


@bp.post("/handoff/<int:handoff_id>/choice")
@heard_by(Audience.LEG)
def supervisor_choice(handoff_id: int) -> Response:
    """1 speaks to both, 2 (or silence) coaches the peer only, 3 leaves the call."""
    found = _handoff()
    if found is None:
        return to_response(empty())
    handoff, room = found
    speaker = _supervisor_speaker(room)
    peer_call = room.peer_call_sid
    digits = request.form.get("Digits", "")
    if digits == "3" or not escalation.in_conversation(room) or peer_call is None:
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    return to_response(_as_coach(speaker, handoff, room, None if digits == "1" else peer_call))


# Status callbacks -----------------------------------------------------------------------------


@bp.post("/handoff/<int:handoff_id>/status")
@heard_by(Audience.NOBODY)
def handoff_status(handoff_id: int) -> Response:
    """Status callback of the crisis line's or the supervisor's leg."""
    found = _handoff()
    if found is not None:
        escalation.handoff_status(get_session(), services(), found[0], found[1],
                                  request.form.get("CallStatus", ""), utcnow())
    return to_response(empty())


@bp.post("/monitor/<int:monitor_id>/status")
@heard_by(Audience.NOBODY)
def monitor_status(monitor_id: int) -> Response:
    """Status callback of a listener's leg (a supervisor from the board, or a trainee)."""
    monitor = escalation.monitor_for_call(get_session(), monitor_id, request.form.get("CallSid", ""))
    if monitor is not None:
        escalation.monitor_status(get_session(), services(), monitor, request.form.get("CallStatus", ""), utcnow())
    return to_response(empty())
