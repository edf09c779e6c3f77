"""A peer's ringing leg: the whisper and its one key, the end of the conversation, the leg's status callback.

The leg is placed by :func:`callflows.routing.ring`; the first peer to press 1 wins the caller
atomically (:func:`callflows.routing.accept`). Never the caller's number: the whisper names
only the language and the lived experience the caller asked for.
"""
from __future__ import annotations

from flask import Response, request

from callflows import callers, line, records, routing
from callflows.peers import LIVE_LEGS
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import Speaker, empty, to_response
from ivr.webhooks.blueprints import routing as bp
from ivr.webhooks.context import caller_gone_wrap_up, current_ctx, peer_flow, public_url
from ivr.webhooks.failures import Audience, heard_by
from models import Peer, utcnow
from models.tables import PeerRequest, RingLeg


def _leg(leg_id: int) -> tuple[RingLeg, PeerRequest, Peer] | None:
    return routing.leg_for_call(get_session(), leg_id, request.form.get("CallSid", ""))


@bp.post("/leg/<int:leg_id>/whisper")
@heard_by(Audience.LEG)
def leg_whisper(leg_id: int) -> Response:
    """A peer picked up: the whisper (language, wanted experience), press 1 to accept."""
    found = _leg(leg_id)
    if found is None:
        return to_response(empty())
    leg, req, peer = found
    speaker = Speaker(peer_flow(peer))
    if leg.status not in LIVE_LEGS:
        return to_response(speaker.say_then_hangup(
            [speaker.text("peer_taken" if req.status in ("connected", "ended") else "peer_caller_gone")]))
    routing.leg_answered(get_session(), leg)
    language = speaker.text(f"lang_{req.language}") if f"lang_{req.language}" in speaker.flow.strings \
        else req.language
    whisper = speaker.text("whisper", language=language)
    if req.wanted_tag == routing.TOPIC_TAGS["medication"]:
        whisper += " " + speaker.text("whisper_medication")
    if callers.has_plan_for_call(get_session(), req.call_id):
        # A cue only: the plan itself is on the peer's page, never read aloud.
        whisper += " " + speaker.text("whisper_plan")
    return to_response(speaker.whisper(whisper, public_url("routing.leg_answer", leg_id=leg.id),
                                       [speaker.text("whisper_missed")]))


@bp.post("/leg/<int:leg_id>/answer")
@heard_by(Audience.LEG)
def leg_answer(leg_id: int) -> Response:
    """The peer's key: only 1 bridges; the first 1 wins, a later one hears the call was taken."""
    found = _leg(leg_id)
    if found is None:
        return to_response(empty())
    leg, req, peer = found
    speaker = Speaker(peer_flow(peer))
    if request.form.get("Digits") != "1":
        return to_response(speaker.say_then_hangup([speaker.text("whisper_missed")]))
    outcome = routing.accept(get_session(), services(), leg, utcnow())
    if outcome == "accepted":
        # hangupOnStar: * opens the peer's in-call menu (ivr.webhooks.in_call); the caller stays in the room.
        return to_response(speaker.peer_conference([speaker.text("peer_accepted")], routing.room_name(req),
                                                   public_url("routing.in_call_after", leg_id=leg.id)))
    return to_response(speaker.say_then_hangup([speaker.text("peer_taken" if outcome == "taken"
                                                             else "peer_caller_gone")]))


@bp.post("/leg/<int:leg_id>/after")
@heard_by(Audience.LEG)
def leg_after(leg_id: int) -> Response:
    """The peer's side of the conversation ended (they were in the room): wrap-up, as in_call_after does."""
    found = _leg(leg_id)
    if found is None:
        return to_response(current_ctx().speaker.say_then_hangup([current_ctx().speaker.text("peer_thanks")]))
    line.peer_in_room(get_session(), services(), found[0], utcnow())
    return to_response(caller_gone_wrap_up(Speaker(peer_flow(found[2])), found[0], found[1]))


@bp.post("/leg/<int:leg_id>/record")
@heard_by(Audience.LEG)
def leg_record(leg_id: int) -> Response:
    """The outcome the peer keyed after the call (nothing keyed: they can complete it on their page)."""
    found = _leg(leg_id)
    speaker = Speaker(peer_flow(found[2])) if found else current_ctx().speaker
    outcome = records.fields().outcome_for_key(request.form.get("Digits", ""))
    if found is None or found[1].call_id is None or found[1].peer_id != found[2].id or outcome is None:
        return to_response(speaker.say_then_hangup([speaker.text("record_skipped"), speaker.text("peer_thanks")]))
    records.save(get_session(), found[1].call_id, found[2].id, "keypad", outcome=outcome)
    return to_response(speaker.keypad([speaker.text("record_referral")],
                                      public_url("routing.leg_referral", leg_id=leg_id), finish_on_key="",
                                      num_digits=1))


@bp.post("/leg/<int:leg_id>/referral")
@heard_by(Audience.LEG)
def leg_referral(leg_id: int) -> Response:
    """Referral given (1) or not (2); then the record is saved and the peer hears so."""
    found = _leg(leg_id)
    speaker = Speaker(peer_flow(found[2])) if found else current_ctx().speaker
    referral = {"1": True, "2": False}.get(request.form.get("Digits", ""))
    if found is not None and found[1].call_id is not None and found[1].peer_id == found[2].id \
            and referral is not None:
        records.save(get_session(), found[1].call_id, found[2].id, "keypad", referral=referral)
    return to_response(speaker.say_then_hangup([speaker.text("record_saved"), speaker.text("peer_thanks")]))
NOTICES = {"taken": "peer_taken", "gone": "peer_caller_gone", "left": "peer_caller_left"}


@bp.post("/leg/<int:leg_id>/notice")
@heard_by(Audience.LEG)
def leg_notice(leg_id: int) -> Response:
    """A peer moved here by the line hears why the call is not theirs (taken, caller gone), then the line hangs up."""
    found = _leg(leg_id)
    speaker = Speaker(peer_flow(found[2])) if found else current_ctx().speaker
    phrase = NOTICES.get(request.args.get("why", ""), "peer_caller_gone")
    return to_response(speaker.say_then_hangup([speaker.text(phrase)]))


@bp.post("/leg/<int:leg_id>/status")
@heard_by(Audience.NOBODY)
def leg_status(leg_id: int) -> Response:
    """Status callback of a peer leg: answered, or final (no answer, busy, completed...)."""
    found = _leg(leg_id)
    if found is not None:
        line.ring_leg_status(get_session(), services(), found[0], request.form.get("CallStatus", ""), utcnow())
    return to_response(empty())
