"""The caller's way in and around: the entry point, the language question, menus, and the actions they lead to.

Registers the flow actions ``crisis``, ``language``, ``pace_slow`` and ``pace_normal``. Every
other action is carried out through :mod:`ivr.webhooks.actions`, whoever registered it.

The first question offers Spanish in its first sentence and English after it, by key or by
voice. A language is remembered only when the caller chose it: after two silences the call
goes on in English without saving anything (the next call asks again), and every full menu
says, in Spanish, that 8 or "español" switches at any time.
"""
from __future__ import annotations

import dataclasses

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows import Flow, Transition, choose_language, hours, step
from callflows.announce import spoken_opening
from callflows.calls import (
    call_arrived,
    commit_step,
    go_on_undecided,
    record_event,
    record_step,
    remember_language,
    set_pace,
)
from callflows.engine import names_language, spoken_global_key
from callflows.loader import LANGUAGE_KEY
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import to_response
from ivr.webhooks import actions
from ivr.webhooks.blueprints import voice as bp
from ivr.webhooks.context import Ctx, current_ctx, int_param
from ivr.webhooks.crisis import crisis_dial, heard_danger, record_afterwards
from models import utcnow

# Menu attempts (no input, wrong key) past this count the same as this.
MAX_ATTEMPT = 9
# The first question is asked this many times; then the call goes on, in DEFAULT_LANGUAGE, undecided.
LANGUAGE_ASKS = 2
DEFAULT_LANGUAGE = "en"
# What a story's menu carries in its URLs, so "replay" and "next" know where the caller was.
STORY_CARRY = ("topic", "i")


# Entry and language -------------------------------------------------------------------


@bp.post("/incoming")
def incoming() -> Response:
    """Entry point of every call: the greeting in the remembered language, or the language question."""
    session = get_session()
    svc = services()
    arrival = call_arrived(session, svc.vault, request.form.get("CallSid", ""), request.form.get("From"), svc.flows)
    if arrival.peer:
        # A peer calling from their registered phone runs their shift.
        return to_response(actions.perform(current_ctx(), actions.PEER_SIGN_IN))
    if arrival.callback_language is not None:  # keep or cancel a waiting callback, in the caller's language
        twiml = actions.perform(current_ctx(arrival.language or arrival.callback_language, arrival.slow),
                                actions.PENDING_CALLBACK)
        session.commit()
        return to_response(twiml)
    if arrival.language is not None:
        ctx = current_ctx(arrival.language, arrival.slow)
        closed = _closed_notice(ctx.flow)  # read in the transaction that records the call
        session.commit()
        if closed:  # told at once when the line opens, then the options that stay
            return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("greeting"), *closed],
                                                             ctx.url("voice.menu", node="closed")))
        return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("greeting")], ctx.main_menu_url))
    session.commit()
    return to_response(_language_question(current_ctx(DEFAULT_LANGUAGE), attempt=0))


def _closed_notice(flow: Flow) -> list[str]:
    """While the line is closed: that it is, and when it opens next, in the flow's language (else nothing)."""
    settings = services().settings
    now = utcnow()
    schedule = hours.load_schedule(get_session(), settings.zone, now)
    if schedule.is_open(now):
        return []
    return [flow.text("closed_now"), spoken_opening(schedule.next_opening(now), now, settings, flow)]


def _first_menu(ctx: Ctx, preface: list[str], closed: list[str] | None = None) -> VoiceResponse:
    """The first menu after the greeting: the closed menu, saying when the line opens, while it is closed.

    ``closed`` is :func:`_closed_notice` when the handler read it already (in its own transaction).
    """
    if closed is None:
        closed = _closed_notice(ctx.flow)
    if closed:
        return ctx.menu("closed", preface=[*preface, *closed])
    return ctx.menu(ctx.flow.start, preface=preface)


def _language_question(ctx: Ctx, attempt: int, change: bool = False) -> VoiceResponse:
    """The first question: the line's name, then Spanish offers itself before English, then the crisis key in both.

    ``change`` is the same question asked from the settings menu: no name, and silence keeps
    the caller's language.
    """
    flows = services().flows
    default = flows[DEFAULT_LANGUAGE]
    others = [flow for flow in flows.values() if flow is not default]
    prompts: list[tuple[Flow, str]] = []
    if attempt == 0 and not change:
        prompts.append((default, default.text("line_name")))
    prompts.extend((flow, flow.text("language_offer")) for flow in (*others, default))
    prompts.extend((flow, flow.text("language_crisis")) for flow in (default, *others))
    url = ctx.url("voice.language", attempt=attempt, **({"change": 1} if change else {}))
    return ctx.speaker.choose_language(flows, url, prompts)


@bp.post("/language")
def language() -> Response:
    """Answer to the language question: a chosen language is remembered for the caller's next calls, a default never."""
    attempt = int_param("attempt", high=MAX_ATTEMPT)
    change = request.args.get("change") == "1"
    digits = request.form.get("Digits", "")
    speech = request.form.get("SpeechResult") or ""
    ctx = current_ctx()
    chosen = choose_language(digits, speech)
    # The keys that work everywhere, by key or (when no language was named) by voice.
    key = digits[:1] or (spoken_global_key(speech) if chosen is None else None)
    if key == "9":
        return to_response(actions.perform(ctx, "crisis"))
    if key == "0":
        return to_response(actions.perform(ctx, "person"))
    if key == "*":
        return to_response(_language_question(ctx, attempt, change))
    if digits == "8" and not change:  # hidden: a peer on another phone signs in with peer number and PIN
        return to_response(actions.perform(ctx, actions.PEER_ID))
    if chosen is not None and chosen in services().flows:
        # Read before the choice is saved, so both share one transaction (a change goes straight to the menu).
        closed = [] if change else _closed_notice(services().flows[chosen])
        slow = remember_language(get_session(), ctx.call_sid, chosen, digits or "speech")
        # A new language: its keys have not been heard yet, and the caller has now chosen.
        ctx = dataclasses.replace(current_ctx(chosen, slow), told=False, undecided=False)
        # Greeted in the language just chosen (a change of language goes straight to the menu).
        if change:
            return to_response(ctx.menu(ctx.flow.start))
        return to_response(_first_menu(ctx, [ctx.flow.text("greeting")], closed))
    if attempt + 1 < LANGUAGE_ASKS:
        return to_response(_language_question(ctx, attempt + 1, change))
    if change:  # asked from the settings: nothing changes
        record_event(get_session(), ctx.call_sid, "language", digits or "no-input", f"kept {ctx.flow.language}")
        commit_step(get_session())
        return to_response(ctx.menu(ctx.flow.start, preface=[ctx.flow.text("language_kept")]))
    # Nobody chose: go on in the default language, in both (see Ctx.language_switch), and save nothing.
    slow = go_on_undecided(get_session(), ctx.call_sid, DEFAULT_LANGUAGE, digits or "no-input")
    ctx = dataclasses.replace(current_ctx(DEFAULT_LANGUAGE, slow), undecided=True)
    return to_response(_first_menu(ctx, [ctx.flow.text("greeting")]))


def _switch_language(ctx: Ctx, node: str, digits: str | None, speech: str | None) -> VoiceResponse | None:
    """A caller who has not chosen a language presses 8 or names one: remembered now, the same menu in it."""
    if digits:
        if digits[:1] != LANGUAGE_KEY:
            return None
        chosen = next((f.language for f in services().flows.values() if f.language != ctx.flow.language), None)
    else:
        chosen = names_language(speech or "")
    if chosen is None or chosen not in services().flows:
        return None
    slow = remember_language(get_session(), ctx.call_sid, chosen, digits or "speech")
    switched = Ctx(ctx.call_sid, services().flows[chosen], slow)
    preface = [switched.flow.text("greeting")] if chosen != ctx.flow.language else []
    return switched.menu(node, preface=preface, carry=_story_carry())


# Menus --------------------------------------------------------------------------------


def _story_carry() -> dict[str, object]:
    """The story position carried through the story_after menu."""
    return {name: request.args[name] for name in STORY_CARRY if name in request.args}


@bp.post("/menu/<node>")
def menu(node: str) -> Response:
    """Say a menu (the first one for a node the flow does not have)."""
    ctx = current_ctx()
    if node not in ctx.flow.nodes:
        node = ctx.flow.start
    return to_response(ctx.menu(node, carry=_story_carry()))


@bp.post("/menu/<node>/answer")
def answer(node: str) -> Response:
    """What the caller pressed or said in a menu: the pure engine decides, we carry it out."""
    ctx = current_ctx()
    if node not in ctx.flow.nodes:
        return to_response(ctx.menu(ctx.flow.start, carry=_story_carry()))
    digits = request.form.get("Digits") or None
    speech = request.form.get("SpeechResult") or None
    if ctx.undecided:
        switched = _switch_language(ctx, node, digits, speech)
        if switched is not None:
            return to_response(switched)
    transition = step(ctx.flow, node, digits=digits, speech=speech, attempt=int_param("attempt", high=MAX_ATTEMPT),
                      danger=heard_danger)
    record_step(services().engine, ctx.call_sid, node, transition.matched or transition.kind, transition.target)
    return to_response(_carry_out(ctx, node, transition))


def _carry_out(ctx: Ctx, node: str, t: Transition) -> VoiceResponse:
    carry = _story_carry()
    # When no answer came, the caller hears where the default takes them before it does.
    note = [ctx.flow.nodes[node].default_note] if t.default else []
    if t.kind == "node":
        return ctx.menu(t.target, preface=note, carry=carry)
    if t.kind == "action":
        if note:
            return ctx.speaker.say_then_redirect(note, ctx.url("voice.action", name=t.target, **carry))
        return actions.perform(ctx, t.target)
    # Asked to repeat, or no answer, or a wrong one: the menu again, with the full block of keys.
    preface = ctx.retry_preface(ctx.flow.nodes[node], t)
    return ctx.menu(node, t.attempt, preface=preface, simpler=t.simpler, carry=carry, full_keys=True)


@bp.post("/action/<name>")
def action(name: str) -> Response:
    """Carry out a flow action reached by a Redirect (the first menu for a name that is none)."""
    ctx = current_ctx()
    if not actions.is_flow_action(name):
        return to_response(ctx.menu(ctx.flow.start, carry=_story_carry()))
    return to_response(actions.perform(ctx, name))


# Actions ------------------------------------------------------------------------------


@actions.action("crisis")
def crisis(ctx: Ctx) -> VoiceResponse:
    """The crisis line by any other way (a menu's default, a hand-over): dial first, record afterwards."""
    record_afterwards(ctx.call_sid, "crisis", "action")
    return crisis_dial(ctx)


CRISIS_NOT_CONNECTED = ("busy", "no-answer", "failed", "canceled")  # Twilio's DialCallStatus when nobody answered


@bp.post("/crisis/done")
def crisis_done() -> Response:
    """After the crisis line call ends: back to the main menu; if it did not connect, say what else to do first."""
    ctx = current_ctx()
    # A busy, unanswered or failed crisis dial must never drop the caller silently into a menu.
    unreachable = request.form.get("DialCallStatus") in CRISIS_NOT_CONNECTED
    lines = [ctx.flow.text("crisis_unreachable")] if unreachable else []
    return to_response(ctx.speaker.say_then_redirect(lines, ctx.main_menu_url))


@actions.action("language")
def language_again(ctx: Ctx) -> VoiceResponse:
    """Change language: the language question again, without the line's name; silence keeps the language."""
    return _language_question(ctx, attempt=0, change=True)


def _set_pace(ctx: Ctx, slow: bool) -> VoiceResponse:
    set_pace(get_session(), ctx.call_sid, slow)
    paced = dataclasses.replace(ctx, slow=slow)
    line = ctx.flow.text("pace_slow" if slow else "pace_normal")
    return paced.speaker.say_then_redirect([line], paced.main_menu_url)


@actions.action("pace_slow")
def pace_slow(ctx: Ctx) -> VoiceResponse:
    """Speak more slowly from now on (remembered for the caller's next calls)."""
    return _set_pace(ctx, True)


@actions.action("pace_normal")
def pace_normal(ctx: Ctx) -> VoiceResponse:
    """Speak at the usual pace again."""
    return _set_pace(ctx, False)
