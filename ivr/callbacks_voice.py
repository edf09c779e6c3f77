"""Webhooks of callbacks: the caller's request (number, window, message), a returning caller's
pending callback, and the two legs of an attempt (the peer first, then the caller).

Logic lives in :mod:`ivr.callbacks`; this module turns webhooks into calls of it and TwiML
from :mod:`ivr.twiml`. The request is a ``draft`` callback row keyed by the call, so no step
depends on server memory. Menus are data (``callback_*`` nodes in ``callflows/data``).
"""
from __future__ import annotations

from typing import Callable

from flask import Blueprint, Response, request
from sqlalchemy import update
from twilio.twiml.voice_response import VoiceResponse

from callflows import Flow, Transition, step
from callflows import callbacks, line
from callflows.calls import caller_for_call, find_or_create_call, is_withheld, record_event
from callflows.times import aware
from ivr.db import get_session
from ivr.services import services
from ivr.signature import require_twilio_signature
from ivr.twiml import Speaker, to_response
from ivr.voice import Ctx, current_ctx, perform_action
from models import CallbackRequest, Caller, Peer, utcnow
from models.tables import CallbackAttempt, PeerRequest

bp = Blueprint("callbacks", __name__, url_prefix="/callbacks")
bp.before_request(require_twilio_signature)

REQUEST_NODES = ("callback_confirm", "callback_window", "callback_message")
FINAL_CALL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")
KEY_TRIES = 3


def _int_arg(name: str) -> int:
    try:
        return int(request.args.get(name, 0))
    except ValueError:
        return 0


# The request -------------------------------------------------------------------------------


def start_request(ctx: Ctx, arrived_at=None) -> VoiceResponse:  # type: ignore[no-untyped-def]
    """Begin a callback request on this call: confirm caller ID, or key a number when it is hidden."""
    session = get_session()
    svc = services()
    call = find_or_create_call(session, ctx.call_sid)
    session.flush()
    number = request.form.get("From", "")
    withheld = is_withheld(number)
    arrived = arrived_at or aware(call.started_at) or utcnow()
    cb = callbacks.start_draft(session, svc, ctx.call_sid, call.id, call.caller_id, None if withheld else number,
                               ctx.flow.language, arrived)
    record_event(session, ctx.call_sid, "callback", None, "withheld" if withheld else "caller id")
    session.commit()
    if withheld:
        return _keypad(ctx, cb, [ctx.flow.text("callback_key_withheld")], tries=0)
    return _render(ctx, cb, "callback_confirm")


def after_hold(req: PeerRequest) -> VoiceResponse:
    """The caller left the hold queue for a callback: the same flow, keeping their arrival time."""
    ctx = current_ctx(req.language)
    return start_request(ctx, arrived_at=aware(req.arrived_at))


def _draft(cb_id: int) -> CallbackRequest | None:
    cb = get_session().get(CallbackRequest, cb_id)
    if cb is None or cb.status != "draft" or cb.call_sid != request.form.get("CallSid", ""):
        return None  # a request belongs to one call; never act on another caller's
    return cb


def _render(ctx: Ctx, cb: CallbackRequest, node: str, preface: list[str] | None = None, attempt: int = 0,
            simpler: bool = False) -> VoiceResponse:
    menu = ctx.flow.nodes[node]
    action = ctx.url("callbacks.answer", cb_id=cb.id, node=node, attempt=attempt)
    if node == "callback_confirm":
        digits = callbacks.spoken_digits(callbacks.number_of(services(), cb))
        return ctx.speaker.readback_menu(menu, action, [*(preface or []), ctx.flow.text("callback_number_is")],
                                         digits)
    return ctx.speaker.menu(menu, action, preface=preface or [], simpler=simpler)


@bp.post("/request/<int:cb_id>/<node>/answer")
def answer(cb_id: int, node: str) -> Response:
    """What the caller pressed or said in a callback menu: the pure engine decides, we carry it out."""
    ctx = current_ctx()
    cb = _draft(cb_id)
    if cb is None or node not in REQUEST_NODES:
        return to_response(ctx.speaker.say_then_redirect([], ctx.url("voice.menu", node=ctx.flow.start)))
    transition = step(ctx.flow, node, digits=request.form.get("Digits") or None,
                      speech=request.form.get("SpeechResult") or None, attempt=_int_arg("attempt"))
    session = get_session()
    record_event(session, ctx.call_sid, node, transition.matched or transition.kind, transition.target)
    session.commit()
    return to_response(_carry_out(ctx, cb, node, transition))


def _carry_out(ctx: Ctx, cb: CallbackRequest, node: str, t: Transition) -> VoiceResponse:
    if t.kind == "node":
        if t.target in REQUEST_NODES:
            return _render(ctx, cb, t.target)
        return ctx.speaker.menu(ctx.flow.nodes[t.target], ctx.url("voice.answer", node=t.target, attempt=0))
    if t.kind == "action":
        handler = REQUEST_ACTIONS.get(t.target)
        return handler(ctx, cb) if handler else perform_action(ctx, t.target)
    if t.kind == "repeat":
        return _render(ctx, cb, node)
    if t.kind == "no_input":
        return _render(ctx, cb, node, [ctx.flow.text("no_input")], t.attempt, t.simpler)
    sorry = ctx.flow.text("invalid_speech") if t.matched == "speech" else ctx.flow.text(
        "invalid", key={"#": "pound"}.get(t.matched or "", t.matched or ""))
    return _render(ctx, cb, node, [sorry], t.attempt, t.simpler)


def _keypad(ctx: Ctx, cb: CallbackRequest, preface: list[str], tries: int) -> VoiceResponse:
    return ctx.speaker.keypad([*preface, ctx.flow.text("callback_key_prompt")],
                              ctx.url("callbacks.keyed", cb_id=cb.id, tries=tries))


@bp.post("/request/<int:cb_id>/keyed")
def keyed(cb_id: int) -> Response:
    """The number the caller keyed: read it back slowly, or say clearly what is wrong with it."""
    ctx = current_ctx()
    cb = _draft(cb_id)
    if cb is None:
        return to_response(ctx.speaker.say_then_redirect([], ctx.url("voice.menu", node=ctx.flow.start)))
    digits = request.form.get("Digits", "")
    if digits in ("0", "9") or digits.startswith("9#"):  # the keys that mean the same everywhere
        return to_response(perform_action(ctx, "person" if digits == "0" else "crisis"))
    checked = callbacks.check_keyed_number(digits)
    tries = _int_arg("tries") + 1
    session = get_session()
    record_event(session, ctx.call_sid, "callback_key", "keyed" if checked.e164 else "invalid", checked.problem)
    if checked.e164 is None:
        session.commit()
        problem = ctx.flow.text(checked.problem or "callback_key_none", count=checked.count)
        if tries >= KEY_TRIES:
            # Never a dead end: a message reaches the team without a number.
            return to_response(ctx.speaker.say_then_redirect(
                [problem, ctx.flow.text("callback_key_give_up")], ctx.url("voice.voicemail")))
        return to_response(_keypad(ctx, cb, [problem], tries))
    cb.number_encrypted = services().vault.encrypt_text(checked.e164)
    session.commit()
    return to_response(_render(ctx, cb, "callback_confirm"))


def _key_again(ctx: Ctx, cb: CallbackRequest) -> VoiceResponse:
    return _keypad(ctx, cb, [], tries=0)


def _choose_window(choice: str) -> Callable[[Ctx, CallbackRequest], VoiceResponse]:
    def handler(ctx: Ctx, cb: CallbackRequest) -> VoiceResponse:
        cb.window = choice
        get_session().commit()
        return _render(ctx, cb, "callback_message")
    return handler


def _when(ctx: Ctx, cb: CallbackRequest) -> str:
    settings = services().settings
    if cb.window == "now":
        return ctx.flow.text("callback_when_now")
    zone = settings.zone
    start, end = aware(cb.not_before), aware(cb.not_after)
    assert start is not None and end is not None
    today = start.astimezone(zone).date() == utcnow().astimezone(zone).date()
    # The window's own hours (as the caller chose them), even when it is already open.
    start_h, end_h = settings.windows[cb.window]
    return ctx.flow.text("callback_when_window", day=ctx.flow.text("day_today" if today else "day_tomorrow"),
                         start=callbacks.spoken_hour(start_h), end=callbacks.spoken_hour(end_h))


def _finish(allow_message: bool) -> Callable[[Ctx, CallbackRequest], VoiceResponse]:
    def handler(ctx: Ctx, cb: CallbackRequest) -> VoiceResponse:
        session = get_session()
        cb.allow_message = allow_message
        call = find_or_create_call(session, ctx.call_sid)
        call.outcome = "callback_requested"
        callbacks.confirm(session, services(), cb, utcnow())
        return ctx.speaker.say_then_hangup([ctx.flow.text("callback_confirmed", when=_when(ctx, cb)),
                                            ctx.flow.text("goodbye")])
    return handler


REQUEST_ACTIONS: dict[str, Callable[[Ctx, CallbackRequest], VoiceResponse]] = {
    "callback_key": _key_again,
    "callback_now": _choose_window("now"),
    "callback_morning": _choose_window("morning"),
    "callback_afternoon": _choose_window("afternoon"),
    "callback_evening": _choose_window("evening"),
    "callback_message_yes": _finish(True),
    "callback_message_no": _finish(False),
}


# A returning caller with a pending callback -------------------------------------------------


def pending_prompt(caller: Caller, call_sid: str) -> VoiceResponse | None:
    """At the start of a call: a caller with a pending callback hears it and can keep or cancel it."""
    session = get_session()
    cb = callbacks.pending_for_caller(session, caller.id)
    if cb is None:
        return None
    flows = services().flows
    lang = caller.language if caller.language in flows else cb.language
    ctx = current_ctx(lang, caller.slow_speech)
    record_event(session, call_sid, "callback_pending", None, f"callback {cb.id}")
    asked = callbacks.spoken_time(aware(cb.arrived_at) or utcnow(), services().settings)
    preface = [ctx.flow.text("greeting"), ctx.flow.text("callback_pending_is", time=asked)]
    return ctx.speaker.menu(ctx.flow.nodes["callback_pending"],
                            ctx.url("callbacks.pending_answer", cb_id=cb.id, attempt=0), preface=preface)


@bp.post("/pending/<int:cb_id>/answer")
def pending_answer(cb_id: int) -> Response:
    """Keep (1) or cancel (2) the pending callback; then the main menu."""
    ctx = current_ctx()
    session = get_session()
    cb = session.get(CallbackRequest, cb_id)
    caller = caller_for_call(session, ctx.call_sid)
    main = ctx.url("voice.menu", node=ctx.flow.start)
    if cb is None or caller is None or cb.caller_id != caller.id:
        return to_response(ctx.speaker.say_then_redirect([], main))
    t = step(ctx.flow, "callback_pending", digits=request.form.get("Digits") or None,
             speech=request.form.get("SpeechResult") or None, attempt=_int_arg("attempt"))
    record_event(session, ctx.call_sid, "callback_pending", t.matched or t.kind, t.target)
    session.commit()
    if t.kind == "action" and t.target == "callback_cancel":
        done = callbacks.cancel(session, cb, utcnow())
        return to_response(ctx.speaker.say_then_redirect(
            [ctx.flow.text("callback_canceled" if done else "callback_kept")], main))
    if t.kind == "action" and t.target == "callback_keep":
        return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("callback_kept")], main))
    if t.kind == "action":
        return to_response(perform_action(ctx, t.target))
    menu = ctx.flow.nodes["callback_pending"]
    action = ctx.url("callbacks.pending_answer", cb_id=cb.id, attempt=t.attempt)
    preface = [] if t.kind == "repeat" else [ctx.flow.text("no_input" if t.kind == "no_input" else "invalid_speech"
                                                           if t.matched == "speech" else "invalid",
                                                           key=t.matched or "")]
    return to_response(ctx.speaker.menu(menu, action, preface=preface, simpler=t.simpler))


# The attempt: the peer's leg, then the caller's -----------------------------------------------


def _attempt(attempt_id: int, leg: str) -> CallbackAttempt | None:
    """The attempt of this webhook, if the CallSid is its ``leg``'s (adopted when not yet stored)."""
    session = get_session()
    attempt = session.get(CallbackAttempt, attempt_id)
    sid = request.form.get("CallSid", "")
    if attempt is None or not sid:
        return None
    column = CallbackAttempt.peer_call_sid if leg == "peer" else CallbackAttempt.caller_call_sid
    stored = attempt.peer_call_sid if leg == "peer" else attempt.caller_call_sid
    if stored is None:
        # The dialler may have died before storing the SID (a killed worker): the first
        # webhook of the call names it, and only this attempt's URLs carry its id.
        session.execute(update(CallbackAttempt).where(CallbackAttempt.id == attempt_id, column.is_(None))
                        .values({column: sid}))
        session.commit()
        session.refresh(attempt)
        stored = attempt.peer_call_sid if leg == "peer" else attempt.caller_call_sid
    return attempt if stored == sid else None


def _peer_speaker(attempt: CallbackAttempt) -> Speaker:
    flows = services().flows
    peer = get_session().get(Peer, attempt.peer_id) if attempt.peer_id else None
    languages = [lang for lang in ((peer.languages if peer else None) or []) if lang in flows]
    return Speaker(flows[languages[0] if languages else "en"])


def _caller_flow(attempt: CallbackAttempt) -> Flow:
    flows = services().flows
    cb = get_session().get(CallbackRequest, attempt.callback_id)
    return flows.get(cb.language if cb else "en") or flows["en"]


def _absolute(endpoint: str, **values: object) -> str:
    from flask import url_for

    return services().settings.public_base_url + url_for(endpoint, **values)


@bp.post("/attempt/<int:attempt_id>/peer")
def peer_whisper(attempt_id: int) -> Response:
    """The peer picked up: when the caller called (never their number), press 1 to call them now."""
    attempt = _attempt(attempt_id, "peer")
    if attempt is None:
        return to_response(VoiceResponse())
    speaker = _peer_speaker(attempt)
    if attempt.stage not in ("peer_ringing", "peer_answered"):
        return to_response(speaker.say_then_hangup([speaker.text("callback_peer_gone")]))
    session = get_session()
    callbacks.peer_answered(session, attempt)
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    when = callbacks.spoken_time(aware(cb.arrived_at) or utcnow(), services().settings)
    return to_response(speaker.whisper(speaker.text("callback_whisper", time=when),
                                       _absolute("callbacks.peer_answer", attempt_id=attempt.id),
                                       [speaker.text("whisper_missed")]))


@bp.post("/attempt/<int:attempt_id>/peer/answer")
def peer_answer(attempt_id: int) -> Response:
    """The peer's key: 1 dials the caller and puts the peer in the private room to wait for them."""
    attempt = _attempt(attempt_id, "peer")
    if attempt is None:
        return to_response(VoiceResponse())
    speaker = _peer_speaker(attempt)
    if request.form.get("Digits") != "1":
        return to_response(speaker.say_then_hangup([speaker.text("whisper_missed")]))
    outcome = callbacks.peer_accepts(get_session(), services(), attempt, utcnow())
    if outcome == "dialing":
        return to_response(speaker.conference([speaker.text("callback_peer_calling")],
                                              callbacks.room_name(attempt.id),
                                              _absolute("callbacks.peer_after", attempt_id=attempt.id)))
    line = "callback_peer_gone" if outcome == "gone" else "callback_peer_no_answer"
    return to_response(speaker.say_then_hangup([speaker.text(line)]))


@bp.post("/attempt/<int:attempt_id>/peer/after")
def peer_after(attempt_id: int) -> Response:
    """The peer's side of the room ended."""
    attempt = _attempt(attempt_id, "peer")
    speaker = _peer_speaker(attempt) if attempt else Speaker(services().flows["en"])
    return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))


@bp.post("/attempt/<int:attempt_id>/peer/notice")
def peer_notice(attempt_id: int) -> Response:
    """The caller was not reached: tell the peer, who is then free again."""
    attempt = _attempt(attempt_id, "peer")
    speaker = _peer_speaker(attempt) if attempt else Speaker(services().flows["en"])
    return to_response(speaker.say_then_hangup([speaker.text("callback_peer_no_answer")]))


@bp.post("/attempt/<int:attempt_id>/peer/status")
def peer_status(attempt_id: int) -> Response:
    """Status callback of the peer's leg."""
    attempt = _attempt(attempt_id, "peer")
    if attempt is None:
        return to_response(VoiceResponse())
    status = request.form.get("CallStatus", "")
    session = get_session()
    if status in ("in-progress", "answered"):
        callbacks.peer_answered(session, attempt)
    elif status in FINAL_CALL_STATUSES:
        line.callback_peer_leg_ended(session, services(), attempt, utcnow())
    return to_response(VoiceResponse())


@bp.post("/attempt/<int:attempt_id>/caller")
def caller_answer(attempt_id: int) -> Response:
    """The caller's phone answered: a person joins the peer; a machine hears the neutral message, if allowed."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is None:
        return to_response(VoiceResponse())
    session = get_session()
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    speaker = Speaker(_caller_flow(attempt))
    outcome = callbacks.caller_answers(session, services(), attempt, request.form.get("AnsweredBy"), utcnow())
    if outcome == "human":
        return to_response(speaker.conference([speaker.text("callback_hello")], callbacks.room_name(attempt.id),
                                              _absolute("callbacks.caller_after", attempt_id=attempt.id)))
    if outcome == "machine" and cb.allow_message:
        # Never names the service: whoever hears the machine learns nothing.
        return to_response(speaker.say_then_hangup([speaker.text("callback_machine")]))
    twiml = VoiceResponse()
    twiml.hangup()
    return to_response(twiml)


@bp.post("/attempt/<int:attempt_id>/caller/after")
def caller_after(attempt_id: int) -> Response:
    """The caller's side of the room ended."""
    attempt = _attempt(attempt_id, "caller")
    speaker = Speaker(_caller_flow(attempt)) if attempt else Speaker(services().flows["en"])
    return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))


@bp.post("/attempt/<int:attempt_id>/caller/status")
def caller_status(attempt_id: int) -> Response:
    """Status callback of the caller's leg: no answer or busy means a retry (or missed)."""
    attempt = _attempt(attempt_id, "caller")
    if attempt is None:
        return to_response(VoiceResponse())
    status = request.form.get("CallStatus", "")
    if status in FINAL_CALL_STATUSES:
        callbacks.caller_leg_ended(get_session(), services(), attempt, status, utcnow())
    return to_response(VoiceResponse())
