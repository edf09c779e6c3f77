"""In-call help: the peer's ``*`` menu, the announcements, the supervisor's leg, the hand-off and listener callbacks.

The rules are :mod:`callflows.escalation`. Routes live on the ``routing`` blueprint (``/peer``):
the peer's ``<Dial hangupOnStar>`` comes back to :func:`in_call_after` when the peer presses
``*``; the caller meanwhile hears :func:`in_call_caller_notice` (a participant announcement)
and never leaves the room. The supervisor is rung with a whisper and joins as a coach of the
peer's leg; their own ``*`` lets them speak to both or leave.
"""
from __future__ import annotations

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows import escalation, line, routing
from callflows.calls import by_id
from callflows.errors import CallflowError
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import Speaker, empty, to_response
from ivr.webhooks.blueprints import routing as bp
from ivr.webhooks.context import caller_flow, caller_gone_wrap_up, peer_flow, public_url
from ivr.webhooks.failures import Audience, heard_by
from models import Peer, utcnow
from models.escalation import Handoff
from models.tables import PeerRequest, RingLeg

# What the peer may be told in the room, by the name in the URL -> the phrase.
PEER_NOTICES = {"crisis_answered": "notice_crisis_answered", "crisis_no_answer": "notice_crisis_no_answer",
                "supervisor_joined": "notice_supervisor_joined",
                "supervisor_no_answer": "notice_supervisor_no_answer",
                "monitor": "notice_monitor", "trainee": "notice_trainee"}


def _hung_up() -> bool:
    """Twilio requests a Dial's action after a hang-up too (CallStatus completed); nobody hears the answer."""
    return request.form.get("CallStatus", "") in ("completed", "canceled", "failed", "busy", "no-answer")


def _back_to_caller(speaker: Speaker, lines: list[str], req: PeerRequest, leg: RingLeg) -> VoiceResponse:
    return speaker.peer_conference(lines, routing.room_name(req), public_url("routing.in_call_after", leg_id=leg.id))


def _peer_menu(speaker: Speaker, leg: RingLeg) -> VoiceResponse:
    return speaker.keypad([speaker.text("in_call_menu")], public_url("routing.in_call_choice", leg_id=leg.id),
                          finish_on_key="", num_digits=1)


# The peer's side ------------------------------------------------------------------------------


@bp.post("/leg/<int:leg_id>/in-call")
@heard_by(Audience.LEG)
def in_call_after(leg_id: int) -> Response:
    """The peer's Dial ended: ``*`` (their private menu, the caller reassured) or the conversation is over."""
    session = get_session()
    found = routing.leg_for_call(session, leg_id, request.form.get("CallSid", ""))
    if found is None:
        return to_response(empty())
    leg, req, peer = found
    speaker = Speaker(peer_flow(peer))
    if leg.status != "accepted":
        return to_response(empty() if _hung_up() else speaker.say_then_hangup([speaker.text("peer_thanks")]))
    if _hung_up():
        # The peer hung up in the room: their side is over (wrap-up), and the caller is never left alone in it.
        line.peer_left_room(session, services(), leg, utcnow())
        return to_response(empty())
    if escalation.peer_stepped_out(session, services(), req, utcnow()):
        return to_response(_peer_menu(speaker, leg))
    # The room ended with the caller: wrap-up starts with the call record, as after any call.
    line.peer_in_room(session, services(), leg, utcnow())
    return to_response(caller_gone_wrap_up(speaker, leg, req))


@bp.post("/leg/<int:leg_id>/in-call/choice")
@heard_by(Audience.LEG)
def in_call_choice(leg_id: int) -> Response:
    """1 adds the crisis line, 2 rings the supervisor, 3 (or silence) goes back to the caller; another key repeats."""
    session = get_session()
    found = routing.leg_for_call(session, leg_id, request.form.get("CallSid", ""))
    if found is None:
        return to_response(empty())
    leg, req, peer = found
    speaker = Speaker(peer_flow(peer))
    if not escalation.in_conversation(req) or leg.status != "accepted":
        return to_response(speaker.say_then_hangup([speaker.text("peer_caller_gone")]))
    digits = request.form.get("Digits", "")
    choice = escalation.PEER_MENU.get(digits, "back" if not digits else "repeat")
    if choice == "repeat":
        return to_response(_peer_menu(speaker, leg))
    now = utcnow()
    lines = [speaker.text("in_call_back")]
    try:
        if choice == "crisis":
            handoff = escalation.add_crisis_line(session, services(), req, now)
            lines = [speaker.text("in_call_failed" if handoff.status == "failed" else "in_call_crisis_calling")]
        elif choice == "supervisor":
            handoff = escalation.ask_supervisor(session, services(), req, now)
            lines = [speaker.text("in_call_no_supervisor" if handoff.status == "failed"
                                  else "in_call_supervisor_calling")]
    except CallflowError:  # the caller left while the peer chose
        return to_response(speaker.say_then_hangup([speaker.text("peer_caller_gone")]))
    return to_response(_back_to_caller(speaker, lines, req, leg))


@bp.post("/leg/<int:leg_id>/in-call/notice")  # not /notice: that is peer_legs.leg_notice, on the same blueprint
@heard_by(Audience.NOBODY)
def in_call_peer_notice(leg_id: int) -> Response:
    """An announcement only the peer hears (a counselor answered, nobody answered, someone is listening)."""
    leg = by_id(get_session(), RingLeg, leg_id)
    peer = get_session().get(Peer, leg.peer_id) if leg is not None else None
    speaker = Speaker(peer_flow(peer))
    what = request.args.get("what", "")
    phrase = PEER_NOTICES.get(what)
    if phrase is None:
        return to_response(empty())
    tone = what in ("monitor", "trainee") and services().settings.monitor_notice == "tone"
    return to_response(speaker.announcement([speaker.text(phrase)], tone=tone))


@bp.post("/leg/<int:leg_id>/rejoin")
@heard_by(Audience.LEG)
def in_call_rejoin(leg_id: int) -> Response:
    """A notice for a peer who was out of the room (the line moved their call here), then back to the caller."""
    session = get_session()
    found = routing.leg_for_call(session, leg_id, request.form.get("CallSid", ""))
    if found is None:
        return to_response(empty())
    leg, req, peer = found
    speaker = Speaker(peer_flow(peer))
    if not escalation.in_conversation(req) or leg.status != "accepted":
        return to_response(speaker.say_then_hangup([speaker.text("peer_caller_gone")]))
    phrase = PEER_NOTICES.get(request.args.get("what", ""))
    return to_response(_back_to_caller(speaker, [speaker.text(phrase)] if phrase else [], req, leg))


@bp.post("/caller/<int:req_id>/notice")
@heard_by(Audience.NOBODY)
def in_call_caller_notice(req_id: int) -> Response:
    """What the caller hears while their peer is in the in-call menu (their own language, from the query)."""
    speaker = Speaker(caller_flow(request.args.get("lang")))
    return to_response(speaker.announcement([speaker.text("caller_peer_still_here")]))


# The supervisor's leg -------------------------------------------------------------------------


def _handoff() -> tuple[Handoff, PeerRequest] | None:
    return escalation.handoff_for_call(get_session(), int((request.view_args or {})["handoff_id"]),
                                       request.form.get("CallSid", ""))


def _supervisor_speaker(req: PeerRequest | None) -> Speaker:
    peer = get_session().get(Peer, req.peer_id) if req is not None and req.peer_id else None
    return Speaker(peer_flow(peer))


def _as_coach(speaker: Speaker, handoff: Handoff, req: PeerRequest, coach: str | None) -> VoiceResponse:
    return speaker.coach_conference([speaker.text("supervisor_coaching" if coach else "supervisor_both")],
                                    routing.room_name(req),
                                    public_url("routing.supervisor_after", handoff_id=handoff.id), coach)


@bp.post("/handoff/<int:handoff_id>/whisper")
@heard_by(Audience.LEG)
def supervisor_whisper(handoff_id: int) -> Response:
    """The supervisor picked up: "A peer is asking for help. Press 1 to join."."""
    found = _handoff()
    if found is None:
        return to_response(empty())
    handoff, req = found
    speaker = _supervisor_speaker(req)
    if handoff.status not in escalation.OPEN_HANDOFFS or not escalation.in_conversation(req):
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
    handoff, req = found
    speaker = _supervisor_speaker(req)
    if request.form.get("Digits") != "1":
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    session = get_session()
    coach = escalation.supervisor_joins(session, handoff, req, utcnow())
    if coach is None:
        return to_response(speaker.say_then_hangup([speaker.text("supervisor_call_over")]))
    escalation.tell_peer(session, services(), req, "supervisor_joined")
    return to_response(_as_coach(speaker, handoff, req, coach))


@bp.post("/handoff/<int:handoff_id>/after")
@heard_by(Audience.LEG)
def supervisor_after(handoff_id: int) -> Response:
    """The supervisor pressed ``*`` (their choices), or the room ended."""
    found = _handoff()
    if found is None or _hung_up():
        return to_response(empty())
    handoff, req = found
    speaker = _supervisor_speaker(req)
    if not escalation.in_conversation(req):
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
    handoff, req = found
    speaker = _supervisor_speaker(req)
    leg = escalation.peer_leg(get_session(), req)
    digits = request.form.get("Digits", "")
    if digits == "3" or not escalation.in_conversation(req) or leg is None:
        return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))
    return to_response(_as_coach(speaker, handoff, req, None if digits == "1" else leg.call_sid))


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
