"""The two legs of a callback attempt: the peer's phone first, then the caller's, joined in a private room.

Placed by :func:`callflows.callbacks.ring_peer` and :func:`callflows.callbacks.peer_accepts`;
every leg has a status callback, so a no-answer is known at once. A machine that answers the
caller's phone hears a neutral message (when the caller allowed one) that never names the line.
"""
from __future__ import annotations

from flask import Response, request

from callflows import callbacks, callers, line, records
from callflows.times import aware
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import Speaker, empty, hang_up, to_response
from ivr.webhooks.blueprints import callbacks as bp
from ivr.webhooks.context import caller_flow, peer_flow, public_url
from ivr.webhooks.failures import Audience, heard_by
from models import CallbackRequest, Peer, utcnow
from models.tables import CallbackAttempt


def _attempt(attempt_id: int, leg: str) -> CallbackAttempt | None:
    return callbacks.attempt_for_call(get_session(), attempt_id, leg, request.form.get("CallSid", ""))


def _peer_speaker(attempt: CallbackAttempt | None) -> Speaker:
    peer = get_session().get(Peer, attempt.peer_id) if attempt is not None and attempt.peer_id else None
    return Speaker(peer_flow(peer))


def _caller_speaker(attempt: CallbackAttempt | None) -> Speaker:
    cb = get_session().get(CallbackRequest, attempt.callback_id) if attempt is not None else None
    return Speaker(caller_flow(cb.language if cb else None))


@bp.post("/attempt/<int:attempt_id>/peer")
@heard_by(Audience.LEG)
def peer_whisper(attempt_id: int) -> Response:
    """The peer picked up: when the caller called (never their number), press 1 to call them now."""
    attempt = _attempt(attempt_id, "peer")
    if attempt is None:
        return to_response(empty())
    speaker = _peer_speaker(attempt)
    if attempt.stage not in ("peer_ringing", "peer_answered"):
        return to_response(speaker.say_then_hangup([speaker.text("callback_peer_gone")]))
    session = get_session()
    callbacks.peer_answered(session, attempt)
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    when = callbacks.spoken_time(aware(cb.arrived_at) or utcnow(), services().settings, speaker.flow)
    whisper = speaker.text("callback_whisper", time=when)
    if cb.language != speaker.flow.language:
        # A peer who speaks both hears the line in their first language: name the caller's.
        name = f"lang_{cb.language}"
        whisper += " " + speaker.text("callback_language",
                                      language=speaker.text(name) if name in speaker.flow.strings else cb.language)
    if callers.has_plan(session, cb.caller_id):  # a cue only: the plan is on the peer's page
        whisper += " " + speaker.text("whisper_plan")
    return to_response(speaker.whisper(whisper,
                                       public_url("callbacks.peer_answer", attempt_id=attempt.id),
                                       [speaker.text("whisper_missed")]))


@bp.post("/attempt/<int:attempt_id>/peer/answer")
@heard_by(Audience.LEG)
def peer_answer(attempt_id: int) -> Response:
    """The peer's key: 1 dials the caller and puts the peer in the private room to wait for them."""
    attempt = _attempt(attempt_id, "peer")
    if attempt is None:
        return to_response(empty())
    speaker = _peer_speaker(attempt)
    if request.form.get("Digits") != "1":
        return to_response(speaker.say_then_hangup([speaker.text("whisper_missed")]))
    outcome = callbacks.peer_accepts(get_session(), services(), attempt, utcnow())
    if outcome == "dialing":
        # The peer's side of the room: * opens their in-call menu (its Dial's action is in_call.peer_after),
        # and their leaving never ends the caller's room.
        return to_response(speaker.peer_conference([speaker.text("callback_peer_calling")],
                                                   callbacks.room_name(attempt.id),
                                                   public_url("callbacks.peer_after", attempt_id=attempt.id)))
    said = "callback_peer_gone" if outcome == "gone" else "callback_peer_no_answer"
    return to_response(speaker.say_then_hangup([speaker.text(said)]))


@bp.post("/attempt/<int:attempt_id>/peer/record")
@heard_by(Audience.LEG)
def peer_record(attempt_id: int) -> Response:
    """The outcome the peer keyed after the callback (nothing keyed: they can complete it on their page)."""
    attempt = _attempt(attempt_id, "peer")
    speaker = _peer_speaker(attempt)
    outcome = records.fields().outcome_for_key(request.form.get("Digits", ""))
    call_id = records.call_of_callback(get_session(), attempt) if attempt is not None else None
    if attempt is None or attempt.peer_id is None or call_id is None or outcome is None:
        return to_response(speaker.say_then_hangup([speaker.text("record_skipped"), speaker.text("peer_thanks")]))
    records.save(get_session(), call_id, attempt.peer_id, "keypad", outcome=outcome)
    return to_response(speaker.keypad([speaker.text("record_referral")],
                                      public_url("callbacks.peer_referral", attempt_id=attempt_id),
                                      finish_on_key="", num_digits=1))


@bp.post("/attempt/<int:attempt_id>/peer/referral")
@heard_by(Audience.LEG)
def peer_referral(attempt_id: int) -> Response:
    """Referral given (1) or not (2) on the callback; then the record is saved and the peer hears so."""
    attempt = _attempt(attempt_id, "peer")
    speaker = _peer_speaker(attempt)
    referral = {"1": True, "2": False}.get(request.form.get("Digits", ""))
    call_id = records.call_of_callback(get_session(), attempt) if attempt is not None else None
    if attempt is not None and attempt.peer_id is not None and call_id is not None and referral is not None:
        records.save(get_session(), call_id, attempt.peer_id, "keypad", referral=referral)
    return to_response(speaker.say_then_hangup([speaker.text("record_saved"), speaker.text("peer_thanks")]))


@bp.post("/attempt/<int:attempt_id>/peer/notice")
@heard_by(Audience.LEG)
def peer_notice(attempt_id: int) -> Response:
    """The caller was not reached: tell the peer, who is then free again."""
    attempt = _attempt(attempt_id, "peer")
    speaker = _peer_speaker(attempt)
    said = "callback_peer_caller_left" if attempt is not None and attempt.outcome == "caller_left" \
        else "callback_peer_no_answer"
    return to_response(speaker.say_then_hangup([speaker.text(said)]))


@bp.post("/attempt/<int:attempt_id>/peer/status")
@heard_by(Audience.NOBODY)
def peer_status(attempt_id: int) -> Response:
    """Status callback of the peer's leg."""
    attempt = _attempt(attempt_id, "peer")
    if attempt is not None:
        line.callback_peer_leg_status(get_session(), services(), attempt, request.form.get("CallStatus", ""),
                                      utcnow())
    return to_response(empty())


@bp.post("/attempt/<int:attempt_id>/caller")
@heard_by(Audience.LEG)
def caller_answer(attempt_id: int) -> Response:
    """The caller's phone answered: a person joins the peer; a machine hears the neutral message, if allowed;
    an answer detection could not classify is asked for a key first (callbacks.answer_kind says why)."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is None:
        return to_response(empty())
    outcome = callbacks.caller_answers(get_session(), services(), attempt, request.form.get("AnsweredBy"), utcnow())
    if outcome == callbacks.UNSURE:
        speaker = _caller_speaker(attempt)
        line = speaker.text("callback_press_key")
        # Said twice: the first words are often lost while the phone comes to the ear.
        return to_response(speaker.keypad([line, line], public_url("callbacks.caller_confirm", attempt_id=attempt.id),
                                          num_digits=1))
    return _caller_outcome(attempt, outcome)


@bp.post("/attempt/<int:attempt_id>/caller/confirm")
@heard_by(Audience.LEG)
def caller_confirm(attempt_id: int) -> Response:
    """The key asked for after an ``unknown`` answer: any key is a person (connect), none is a machine."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is None:
        return to_response(empty())
    pressed = bool((request.form.get("Digits") or "").strip())
    return _caller_outcome(attempt, callbacks.caller_confirms(get_session(), services(), attempt, pressed, utcnow()))


def _caller_outcome(attempt: CallbackAttempt, outcome: str) -> Response:
    """A person joins the room; a machine hears the neutral message only if allowed; a fax or a finished attempt nothing."""
    cb = get_session().get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    speaker = _caller_speaker(attempt)
    if outcome == callbacks.HUMAN:
        # The greeting, then a check that the peer is still there (they may leave while it plays).
        return to_response(speaker.say_then_redirect([speaker.text("callback_hello")],
                                                     public_url("callbacks.caller_join", attempt_id=attempt.id)))
    if outcome == callbacks.MACHINE and cb.allow_message:
        # Never names the service: whoever hears the machine learns nothing.
        return to_response(speaker.say_then_hangup([speaker.text("callback_machine")]))
    return to_response(hang_up())


@bp.post("/attempt/<int:attempt_id>/caller/join")
@heard_by(Audience.LEG)
def caller_join(attempt_id: int) -> Response:
    """After the greeting: into the room with the peer, or, if the peer had to leave, told so (the line calls back)."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is None:
        return to_response(empty())
    speaker = _caller_speaker(attempt)
    if callbacks.caller_may_join(get_session(), services(), attempt, utcnow()):
        return to_response(speaker.conference([], callbacks.room_name(attempt.id),
                                              public_url("callbacks.caller_after", attempt_id=attempt.id)))
    return to_response(speaker.say_then_hangup([speaker.text("callback_peer_had_to_leave"),
                                                speaker.text("callback_goodbye")]))


@bp.post("/attempt/<int:attempt_id>/caller/after")
@heard_by(Audience.LEG)
def caller_after(attempt_id: int) -> Response:
    """The caller's side of the room ended (they were in it), or the line moved them here when their peer left
    and nobody else was with them: the callback is completed, and nothing is left ringing for them."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is not None:
        line.callback_caller_left_room(get_session(), services(), attempt, utcnow())
    speaker = _caller_speaker(attempt)
    return to_response(speaker.say_then_hangup([speaker.text("peer_call_over"), speaker.text("callback_goodbye")]))


@bp.post("/attempt/<int:attempt_id>/caller/status")
@heard_by(Audience.NOBODY)
def caller_status(attempt_id: int) -> Response:
    """Status callback of the caller's leg: no answer or busy means a retry (or missed)."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is not None:
        callbacks.caller_leg_status(get_session(), services(), attempt, request.form.get("CallStatus", ""), utcnow())
    return to_response(empty())
