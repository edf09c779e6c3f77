"""The caller's callback request (number, safe window, message or not), and a returning caller's pending callback.

Registers the flow actions ``callback`` (from a menu, or after leaving the hold queue, keeping
the caller's place), the ``callback_*`` answers of the request's menus, ``callback_keep`` and
``callback_cancel``, and the hand-over :data:`~ivr.webhooks.actions.PENDING_CALLBACK` asked at
the start of a call. The request is a ``draft`` callback row keyed by the call, so no step
depends on server memory; the rules are in :mod:`callflows.callbacks`, the menus are data
(``callback_*`` nodes in ``callflows/data``).

A request is never dropped without a word: going back, a default that leaves the request, or
0 for a person says "Your call back is not saved" first (9 goes to the crisis line at once).
"""
from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Callable

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows import Transition, callbacks, hours, step
from callflows.announce import blocked_notice, spoken_day, spoken_day_time
from callflows.calls import caller_for_call, record_event
from callflows.loader import Flow, Menu
from callflows.times import aware
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import to_response
from ivr.webhooks import actions
from ivr.webhooks.blueprints import callbacks as bp
from ivr.webhooks.context import Ctx, current_ctx, int_param
from models import CallbackRequest, utcnow

REQUEST_NODES = ("callback_confirm", "callback_window", "callback_message")
KEY_TRIES = 3
MAX_ATTEMPT = 9  # menu attempts past this count the same as this


# The request -------------------------------------------------------------------------------


@actions.action("callback")
def start_request(ctx: Ctx) -> VoiceResponse:
    """Begin a callback request on this call: confirm caller ID, or key a number when it is hidden."""
    blocked = blocked_notice(get_session(), services().settings, ctx.flow, ctx.call_sid, utcnow())
    if blocked is not None:  # a call back would reach a peer: not while blocked (told, never silent)
        record_event(get_session(), ctx.call_sid, "callback", None, "blocked")
        get_session().commit()
        return ctx.menu("blocked", preface=[blocked])
    cb, withheld = callbacks.begin_request(get_session(), services(), ctx.call_sid, request.form.get("From", ""),
                                           ctx.flow.language, ctx.arrived_at, utcnow())
    if withheld:
        return _keypad(ctx, cb, [ctx.flow.text("callback_key_withheld")], tries=0)
    return _render(ctx, cb, "callback_confirm")


def _draft(cb_id: int) -> CallbackRequest | None:
    return callbacks.draft_of_call(get_session(), cb_id, request.form.get("CallSid", ""))


def _menu(ctx: Ctx, node: str) -> Menu:
    """The request's menu ``node``; the window menu without the windows in which the line is never open."""
    menu = ctx.flow.nodes[node]
    if node != "callback_window":
        return menu
    settings = services().settings
    closed = set(settings.windows) - set(hours.windows_open(get_session(), settings, utcnow()))
    # A window's option leads to action:callback_<window>: a caller is never offered a time the line is closed.
    options = tuple(o for o in menu.options if o.target.removeprefix("action:callback_") not in closed)
    return menu if len(options) == len(menu.options) else dataclasses.replace(menu, options=options)


def _flow_with(ctx: Ctx, menu: Menu) -> Flow:
    """The caller's flow with ``menu`` as it is offered on this call (what the engine steps through)."""
    return dataclasses.replace(ctx.flow, nodes={**ctx.flow.nodes, menu.id: menu})


def _render(ctx: Ctx, cb: CallbackRequest, node: str, preface: list[str] | None = None, attempt: int = 0,
            simpler: bool = False, full_keys: bool = False) -> VoiceResponse:
    menu = _menu(ctx, node)
    if menu is not ctx.flow.nodes[node]:  # some windows left out: the caller hears why
        preface = [*(preface or []), ctx.flow.text("callback_window_open_only")]
    if node == "callback_confirm":
        digits = callbacks.spoken_digits(callbacks.number_of(services(), cb))
        return ctx.speaker.readback_menu(menu, ctx.heard_keys().url("callbacks.answer", cb_id=cb.id, node=node,
                                                                    attempt=attempt),
                                         [*(preface or []), ctx.flow.text("callback_number_is")], digits,
                                         full_keys=full_keys or not ctx.told)
    return ctx.say_menu(menu, "callbacks.answer", preface=preface or [], simpler=simpler, full_keys=full_keys,
                        cb_id=cb.id, node=node, attempt=attempt)


@bp.post("/request/<int:cb_id>/<node>/answer")
def answer(cb_id: int, node: str) -> Response:
    """What the caller pressed or said in a callback menu: the pure engine decides, we carry it out."""
    ctx = current_ctx()
    cb = _draft(cb_id)
    if cb is None or node not in REQUEST_NODES:
        return to_response(ctx.speaker.say_then_redirect([], ctx.main_menu_url))
    menu = _menu(ctx, node)
    transition = step(_flow_with(ctx, menu), node, digits=request.form.get("Digits") or None,
                      speech=request.form.get("SpeechResult") or None,
                      attempt=int_param("attempt", high=MAX_ATTEMPT))
    session = get_session()
    record_event(session, ctx.call_sid, node, transition.matched or transition.kind, transition.target)
    session.commit()
    return to_response(_carry_out(ctx, cb, menu, transition))


def _carry_out(ctx: Ctx, cb: CallbackRequest, menu: Menu, t: Transition) -> VoiceResponse:
    node = menu.id
    # When no answer came, the caller hears what the default does before it does it.
    note = [ctx.flow.nodes[node].default_note] if t.default else []
    if t.kind == "node":
        if t.target in REQUEST_NODES:
            return _render(ctx, cb, t.target, note)
        # Back (or a default) out of the request: it is not saved, and the caller hears so.
        return ctx.menu(t.target, preface=[ctx.flow.text("callback_not_saved"), *note])
    if t.kind == "action":
        if t.target not in REQUEST_ANSWERS and t.target != "crisis":
            # A person (0) leaves the request too. (The crisis line is never kept waiting by words.)
            return ctx.speaker.say_then_redirect([ctx.flow.text("callback_not_saved"), *note],
                                                 ctx.url("voice.action", name=t.target))
        if note:
            return ctx.speaker.say_then_redirect(note, ctx.url("voice.action", name=t.target))
        return actions.perform(ctx, t.target)  # the callback_* answers below find this call's draft
    # Asked to repeat, or no answer, or a wrong one: the menu again, with the full block of keys.
    return _render(ctx, cb, node, ctx.retry_preface(menu, t), t.attempt, t.simpler, full_keys=True)


def _keypad(ctx: Ctx, cb: CallbackRequest, preface: list[str], tries: int) -> VoiceResponse:
    return ctx.speaker.keypad([*preface, ctx.flow.text("callback_key_prompt")],
                              ctx.url("callbacks.keyed", cb_id=cb.id, tries=tries))


@bp.post("/request/<int:cb_id>/keyed")
def keyed(cb_id: int) -> Response:
    """The number the caller keyed: read it back slowly, or say clearly what is wrong with it."""
    ctx = current_ctx()
    cb = _draft(cb_id)
    if cb is None:
        return to_response(ctx.speaker.say_then_redirect([], ctx.main_menu_url))
    digits = request.form.get("Digits", "")
    if digits in ("9", "9#"):  # the crisis line (crisis_first answers first; this is the way when it could not)
        return to_response(actions.perform(ctx, "crisis"))
    if digits == "0":  # a person: the request ends here, and the caller hears so
        return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("callback_not_saved")],
                                                         ctx.url("voice.action", name="person")))
    checked = callbacks.check_keyed_number(digits)
    tries = int_param("tries", high=KEY_TRIES) + 1
    session = get_session()
    record_event(session, ctx.call_sid, "callback_key", "keyed" if checked.e164 else "invalid", checked.problem)
    if checked.e164 is None:
        session.commit()
        problem = ctx.flow.counted(checked.problem or "callback_key_none", checked.count, count=checked.count)
        if tries >= KEY_TRIES:
            # Never a dead end: a message reaches the team without a number.
            return to_response(ctx.speaker.say_then_redirect(
                [problem, ctx.flow.text("callback_key_give_up")], ctx.url("voice.voicemail")))
        return to_response(_keypad(ctx, cb, [problem], tries))
    callbacks.set_number(session, services(), cb, checked.e164)
    return to_response(_render(ctx, cb, "callback_confirm"))


DraftStep = Callable[[Ctx, CallbackRequest], VoiceResponse]


def _for_draft(answer_: DraftStep) -> actions.Handler:
    """An answer of the request's menus, carried out on this call's draft (the main menu when there is none)."""
    def handler(ctx: Ctx) -> VoiceResponse:
        cb = callbacks.draft_for_call(get_session(), ctx.call_sid)
        if cb is None:
            return ctx.speaker.say_then_redirect([], ctx.main_menu_url)
        return answer_(ctx, cb)
    return handler


def _key_again(ctx: Ctx, cb: CallbackRequest) -> VoiceResponse:
    return _keypad(ctx, cb, [], tries=0)


def _choose_window(choice: str) -> DraftStep:
    def chosen(ctx: Ctx, cb: CallbackRequest) -> VoiceResponse:
        callbacks.choose_window(get_session(), cb, choice)
        return _render(ctx, cb, "callback_message")
    return chosen


def _when(ctx: Ctx, cb: CallbackRequest) -> str:
    settings = services().settings
    if cb.window == "now":
        start = aware(cb.not_before)
        if start is not None and start > utcnow() + timedelta(minutes=1):  # the line is closed until then
            return spoken_day_time(start, utcnow(), settings, ctx.flow)
        return ctx.flow.text("callback_when_now")
    # The window's own start hour when it is open already, else when it starts (later than the window's
    # start when the line opens later); its end is when the line's last open stretch in it ends. Its
    # day may be later than tomorrow when the line is closed until then.
    start_h, _end_h = settings.windows[cb.window]
    not_before, not_after = aware(cb.not_before) or utcnow(), aware(cb.not_after) or utcnow()
    # A window past midnight still open after it (evening=20-2 at 1 am) opened yesterday: its start
    # hour said with "today" would be tonight's, so it is promised from now instead.
    opened_today = not_before.astimezone(settings.zone).hour >= start_h
    begins = (callbacks.spoken_hour(start_h, ctx.flow) if not_before <= utcnow() + timedelta(minutes=1) and opened_today
              else callbacks.spoken_time(not_before, settings, ctx.flow))
    day = spoken_day(not_before, utcnow(), settings, ctx.flow)
    return ctx.flow.text("callback_when_window", day=day, start=begins,
                         end=callbacks.spoken_time(not_after, settings, ctx.flow))


def _finish(allow_message: bool) -> DraftStep:
    def finished(ctx: Ctx, cb: CallbackRequest) -> VoiceResponse:
        callbacks.finish_request(get_session(), services(), cb, ctx.call_sid, allow_message, utcnow())
        return ctx.speaker.say_then_hangup([ctx.flow.text("callback_confirmed", when=_when(ctx, cb)),
                                            ctx.flow.text("goodbye")])
    return finished


# The flow actions of the request's menus, each carried out on the call's draft.
REQUEST_ANSWERS: dict[str, DraftStep] = {
    "callback_key": _key_again,
    "callback_now": _choose_window("now"),
    "callback_morning": _choose_window("morning"),
    "callback_afternoon": _choose_window("afternoon"),
    "callback_evening": _choose_window("evening"),
    "callback_message_yes": _finish(True),
    "callback_message_no": _finish(False),
}
for _name, _answer in REQUEST_ANSWERS.items():
    actions.action(_name)(_for_draft(_answer))


# A returning caller with a pending callback -------------------------------------------------


@actions.action(actions.PENDING_CALLBACK)
def pending_prompt(ctx: Ctx) -> VoiceResponse:
    """At the start of a call: the caller hears their pending callback and can keep or cancel it."""
    session = get_session()
    caller = caller_for_call(session, ctx.call_sid)
    cb = callbacks.pending_for_caller(session, caller.id) if caller is not None else None
    if cb is None:  # answered or canceled a moment ago: nothing to ask about
        return ctx.speaker.say_then_redirect([ctx.flow.text("greeting")], ctx.main_menu_url)
    record_event(session, ctx.call_sid, "callback_pending", None, f"callback {cb.id}")
    asked = callbacks.spoken_time(aware(cb.arrived_at) or utcnow(), services().settings, ctx.flow)
    preface = [ctx.flow.text("greeting"), ctx.flow.text("callback_pending_is", time=asked)]
    return ctx.say_menu(ctx.flow.nodes["callback_pending"], "callbacks.pending_answer", preface=preface,
                        cb_id=cb.id, attempt=0)


def _asked_about(ctx: Ctx) -> CallbackRequest | None:
    """The callback the caller was asked about: the one in this request's URL, else their oldest pending one."""
    session = get_session()
    cb_id = (request.view_args or {}).get("cb_id")
    if isinstance(cb_id, int):
        return callbacks.callback_of_caller(session, cb_id, ctx.call_sid)
    caller = caller_for_call(session, ctx.call_sid)
    return callbacks.pending_for_caller(session, caller.id) if caller is not None else None


@actions.action("callback_keep")
def keep(ctx: Ctx) -> VoiceResponse:
    """Keep the pending callback; then the main menu."""
    return ctx.speaker.say_then_redirect([ctx.flow.text("callback_kept")], ctx.main_menu_url)


@actions.action("callback_cancel")
def cancel(ctx: Ctx) -> VoiceResponse:
    """Cancel the pending callback (kept when an attempt already started); then the main menu."""
    cb = _asked_about(ctx)
    done = cb is not None and callbacks.cancel(get_session(), cb, utcnow())
    return ctx.speaker.say_then_redirect([ctx.flow.text("callback_canceled" if done else "callback_kept")],
                                         ctx.main_menu_url)


@bp.post("/pending/<int:cb_id>/answer")
def pending_answer(cb_id: int) -> Response:
    """Keep (1) or cancel (2) the pending callback; then the main menu."""
    ctx = current_ctx()
    session = get_session()
    cb = callbacks.callback_of_caller(session, cb_id, ctx.call_sid)
    if cb is None:
        return to_response(ctx.speaker.say_then_redirect([], ctx.main_menu_url))
    t = step(ctx.flow, "callback_pending", digits=request.form.get("Digits") or None,
             speech=request.form.get("SpeechResult") or None, attempt=int_param("attempt", high=MAX_ATTEMPT))
    record_event(session, ctx.call_sid, "callback_pending", t.matched or t.kind, t.target)
    session.commit()
    menu = ctx.flow.nodes["callback_pending"]
    if t.kind == "action":
        if t.default:  # no answer: the caller hears that nothing changes, then it is kept
            return to_response(ctx.speaker.say_then_redirect([menu.default_note],
                                                             ctx.url("voice.action", name=t.target)))
        return to_response(actions.perform(ctx, t.target))
    return to_response(ctx.say_menu(menu, "callbacks.pending_answer", preface=ctx.retry_preface(menu, t),
                                    simpler=t.simpler, full_keys=True, cb_id=cb.id, attempt=t.attempt))
