"""Twilio voice webhooks: greeting, language, menus, stories, voicemail, crisis, status.

Every response is TwiML made by :mod:`ivr.twiml`. Preferences travel in each URL's query
(``lang``, ``slow``) so a call never depends on server memory, and are stored per caller.
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

from flask import Blueprint, Response, request, url_for
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import HTTPException

from callflows import Flow, Transition, step
from callflows import voicemails
from callflows.calls import caller_for_call, find_or_create_call, find_or_create_caller, record_event
from callflows.peers import peer_for_number
from callflows.stories import approved_stories
from ivr import peers_phone, routing_voice
from ivr.db import get_session
from ivr.media import story_audio_url
from ivr.services import services
from ivr.signature import require_twilio_signature
from ivr.twiml import Speaker, fallback as fallback_twiml, to_response
from models import utcnow

log = logging.getLogger(__name__)
bp = Blueprint("voice", __name__, url_prefix="/voice")
bp.before_request(require_twilio_signature)

SPEECH_WORDS_PER_S = 2.5  # rough rate of <Say>, to estimate where a paused story stopped
RESUME_REWIND_S = 3.0


@dataclass(frozen=True)
class Ctx:
    """What a request knows about the call: its SID, language flow and pace."""

    call_sid: str
    flow: Flow
    slow: bool

    @property
    def speaker(self) -> Speaker:
        """The renderer for this caller."""
        return Speaker(self.flow, self.slow)

    def url(self, endpoint: str, **values: object) -> str:
        """Absolute URL on PUBLIC_BASE_URL that keeps this caller's language and pace."""
        values.setdefault("lang", self.flow.language)
        if self.slow:
            values.setdefault("slow", 1)
        return services().settings.public_base_url + url_for(endpoint, **values)


def current_ctx(lang: str | None = None, slow: bool | None = None) -> Ctx:
    """Build the context from the request's query string (or the given overrides)."""
    flows = services().flows
    lang = lang or request.args.get("lang") or "en"
    flow = flows.get(lang) or flows["en"]
    if slow is None:
        slow = request.args.get("slow") == "1"
    return Ctx(call_sid=request.form.get("CallSid", ""), flow=flow, slow=slow)


def _int_arg(name: str, default: int = 0) -> int:
    try:
        return int(request.args.get(name, default))
    except (TypeError, ValueError):
        return default


# Entry and language -------------------------------------------------------------------


@bp.post("/incoming")
def incoming() -> Response:
    """Entry point of every call: greet, then the remembered language or the language question."""
    session = get_session()
    svc = services()
    peer = peer_for_number(session, svc.vault, request.form.get("From"))
    if peer is not None:  # a peer calling from their registered phone runs their shift
        return to_response(peers_phone.greet_peer(peer))
    caller = find_or_create_caller(session, svc.vault, request.form.get("From"))
    call = find_or_create_call(session, request.form.get("CallSid", ""), caller)
    record_event(session, call.call_sid, "incoming")
    if caller is not None and caller.id is not None:
        from ivr import callbacks_voice  # imports this module

        pending = callbacks_voice.pending_prompt(caller, call.call_sid)  # keep or cancel a waiting callback
        if pending is not None:
            session.commit()
            return to_response(pending)
    if caller is not None and caller.language in svc.flows:
        call.language = caller.language
        session.commit()
        ctx = current_ctx(caller.language, caller.slow_speech)
        return to_response(
            ctx.speaker.say_then_redirect([ctx.flow.text("greeting")], ctx.url("voice.menu", node=ctx.flow.start))
        )
    session.commit()
    return to_response(_language_question(current_ctx(), attempt=0))


def _language_question(ctx: Ctx, attempt: int) -> VoiceResponse:
    flows = services().flows
    prompts: list[tuple[Flow, str]] = []
    if attempt == 0:
        prompts.append((flows["en"], flows["en"].text("greeting")))
    prompts.append((flows["en"], "For English, press 1."))
    if "es" in flows:
        prompts.append((flows["es"], "Para español, oprima 2."))
    prompts.append((flows["en"], "If you are in crisis, press 9."))
    if "es" in flows:
        prompts.append((flows["es"], "Si está en crisis, oprima 9."))
    return ctx.speaker.choose_language(flows, ctx.url("voice.language", attempt=attempt), prompts)


@bp.post("/language")
def language() -> Response:
    """Answer to the language question; remembered for the caller's next call."""
    attempt = _int_arg("attempt")
    digits = request.form.get("Digits", "")
    speech = (request.form.get("SpeechResult") or "").lower()
    chosen = None
    if digits == "9":
        return to_response(perform_action(current_ctx(), "crisis"))
    if digits == "0":
        return to_response(perform_action(current_ctx(), "person"))
    if digits == "*":
        return to_response(_language_question(current_ctx(), attempt=attempt))
    if digits == "8":  # hidden: a peer on another phone signs in with peer number and PIN
        return to_response(peers_phone.ask_peer_id(current_ctx().flow))
    if digits == "1" or "english" in speech or "inglés" in speech:
        chosen = "en"
    elif digits == "2" or "español" in speech or "spanish" in speech or "espanol" in speech:
        chosen = "es"
    elif attempt >= 1:
        chosen = "en"  # safe default after one repeat: carry on rather than hang up
    if chosen is None:
        return to_response(_language_question(current_ctx(), attempt=attempt + 1))
    session = get_session()
    call_sid = request.form.get("CallSid", "")
    caller = caller_for_call(session, call_sid)
    slow = bool(caller and caller.slow_speech)
    if caller is not None:
        caller.language = chosen
    call = find_or_create_call(session, call_sid)
    call.language = chosen
    record_event(session, call_sid, "language", digits or ("speech" if speech else "no-input"), chosen)
    session.commit()
    ctx = current_ctx(chosen, slow)
    return to_response(ctx.speaker.say_then_redirect([], ctx.url("voice.menu", node=ctx.flow.start)))


# Menus --------------------------------------------------------------------------------


def _story_ctx_args() -> dict[str, object]:
    """Story position carried through the story_after menu."""
    return {k: request.args[k] for k in ("topic", "i") if k in request.args}


@bp.post("/menu/<node>")
def menu(node: str) -> Response:
    """Say a menu."""
    ctx = current_ctx()
    if node not in ctx.flow.nodes:
        node = ctx.flow.start
    menu_ = ctx.flow.nodes[node]
    action = ctx.url("voice.answer", node=node, attempt=0, **_story_ctx_args())
    return to_response(ctx.speaker.menu(menu_, action))


@bp.post("/menu/<node>/answer")
def answer(node: str) -> Response:
    """What the caller pressed or said in a menu: the pure engine decides, we carry it out."""
    ctx = current_ctx()
    if node not in ctx.flow.nodes:
        return menu(ctx.flow.start)
    digits = request.form.get("Digits") or None
    speech = request.form.get("SpeechResult") or None
    transition = step(ctx.flow, node, digits=digits, speech=speech, attempt=_int_arg("attempt"))
    session = get_session()
    record_event(session, ctx.call_sid, node, transition.matched or transition.kind, transition.target)
    session.commit()
    return to_response(_carry_out(ctx, node, transition))


def _carry_out(ctx: Ctx, node: str, t: Transition) -> VoiceResponse:
    speaker = ctx.speaker
    extra = _story_ctx_args()
    if t.kind == "node":
        menu_ = ctx.flow.nodes[t.target]
        return speaker.menu(menu_, ctx.url("voice.answer", node=t.target, attempt=0, **extra))
    if t.kind == "action":
        return perform_action(ctx, t.target)
    menu_ = ctx.flow.nodes[node]
    action = ctx.url("voice.answer", node=node, attempt=t.attempt, **extra)
    if t.kind == "repeat":
        return speaker.menu(menu_, action)
    if t.kind == "no_input":
        return speaker.menu(menu_, action, preface=[ctx.flow.text("no_input")], simpler=t.simpler)
    # invalid: say what is possible, then the menu again
    keys = [o.key for o in menu_.options]
    listed = ", ".join(keys[:-1]) + f" {ctx.flow.text('or_word')} {keys[-1]}" if len(keys) > 1 else keys[0]
    sorry = (ctx.flow.text("invalid_speech") if t.matched == "speech"
             else ctx.flow.text("invalid", key=_spoken_key(t.matched or "")))
    preface = [sorry, ctx.flow.text("choices", keys=listed)]
    return speaker.menu(menu_, action, preface=preface, simpler=t.simpler)


def _spoken_key(key: str) -> str:
    return {"#": "pound", "*": "star"}.get(key, key)


# Actions ------------------------------------------------------------------------------


def perform_action(ctx: Ctx, name: str) -> VoiceResponse:
    """Carry out a flow action (talk to a peer, stories, voicemail, crisis line...)."""
    if name.startswith("story:"):
        return _play_story(ctx, name.removeprefix("story:"), 0)
    handler = ACTIONS.get(name)
    if handler is None:  # the loader rejects unknown actions, so this is a programming error
        raise LookupError(f"no handler for action {name!r}")
    return handler(ctx)


def _crisis(ctx: Ctx) -> VoiceResponse:
    settings = services().settings
    record_event(get_session(), ctx.call_sid, "crisis", "9")
    get_session().commit()
    return ctx.speaker.dial([ctx.flow.text("crisis")], settings.crisis_number, ctx.url("voice.crisis_done"))


def _callback(ctx: Ctx) -> VoiceResponse:
    # The callback flow (ivr.callbacks_voice): confirm or key the number, a safe window, a message or not.
    from ivr import callbacks_voice  # imports this module

    return callbacks_voice.start_request(ctx)


def _set_pace(ctx: Ctx, slow: bool) -> VoiceResponse:
    session = get_session()
    caller = caller_for_call(session, ctx.call_sid)
    if caller is not None:
        caller.slow_speech = slow
    session.commit()
    new_ctx = Ctx(ctx.call_sid, ctx.flow, slow)
    line = ctx.flow.text("pace_slow" if slow else "pace_normal")
    return new_ctx.speaker.say_then_redirect([line], new_ctx.url("voice.menu", node=ctx.flow.start))


def _language(ctx: Ctx) -> VoiceResponse:
    return _language_question(ctx, attempt=1)


def _goodbye(ctx: Ctx) -> VoiceResponse:
    return ctx.speaker.say_then_hangup([ctx.flow.text("goodbye")])


def _story_action(ctx: Ctx, delta: int) -> VoiceResponse:
    topic = request.args.get("topic", "")
    index = _int_arg("i") + delta
    if not topic:
        return ctx.speaker.menu(ctx.flow.nodes["stories"], ctx.url("voice.answer", node="stories", attempt=0))
    return _play_story(ctx, topic, max(index, 0))


ACTIONS: dict[str, Callable[[Ctx], VoiceResponse]] = {
    "peer": lambda ctx: routing_voice.talk_to_peer(ctx),
    "story_peer": lambda ctx: routing_voice.talk_about_story(ctx),
    "person": lambda ctx: routing_voice.reach_person(ctx),
    "crisis": _crisis,
    "callback": _callback,
    "voicemail": lambda ctx: _voicemail_twiml(ctx),
    "language": _language,
    "pace_slow": lambda ctx: _set_pace(ctx, True),
    "pace_normal": lambda ctx: _set_pace(ctx, False),
    "goodbye": _goodbye,
    "story_replay": lambda ctx: _story_action(ctx, 0),
    "story_next": lambda ctx: _story_action(ctx, 1),
}


@bp.post("/action/<name>")
def action(name: str) -> Response:
    """Carry out an action reached by a Redirect."""
    ctx = current_ctx()
    if name not in ACTIONS and not name.startswith("story:"):
        return menu(ctx.flow.start)
    return to_response(perform_action(ctx, name))


@bp.post("/crisis/done")
def crisis_done() -> Response:
    """After the crisis line call ends (or did not connect): back to the main menu."""
    ctx = current_ctx()
    return to_response(ctx.speaker.say_then_redirect([], ctx.url("voice.menu", node=ctx.flow.start)))


# Peer stories -------------------------------------------------------------------------


def _play_story(ctx: Ctx, topic: str, index: int, start_s: float = 0.0) -> VoiceResponse:
    stories = approved_stories(get_session(), topic, ctx.flow.language)
    stories_menu = ctx.flow.nodes["stories"]
    if not stories:
        return ctx.speaker.menu(stories_menu, ctx.url("voice.answer", node="stories", attempt=0),
                                preface=[ctx.flow.text("stories_none")])
    if index >= len(stories):
        return ctx.speaker.menu(stories_menu, ctx.url("voice.answer", node="stories", attempt=0),
                                preface=[ctx.flow.text("story_end")])
    story = stories[index]
    record_event(get_session(), ctx.call_sid, "story", None, f"{topic}:{story.id}")
    get_session().commit()
    audio = story_audio_url(story.id, start_s) if story.audio_path else None
    intro = ctx.flow.text("story_intro", title=story.title)
    keys_line = ctx.flow.text("story_keys")
    spoken_s = (len(intro.split()) + len(keys_line.split())) / SPEECH_WORDS_PER_S * (1.25 if ctx.slow else 1.0)
    key_url = ctx.url("voice.story_key", topic=topic, i=index, t0=int(time.time()),
                      start=round(start_s, 1), lead=math.ceil(spoken_s))
    after_url = ctx.url("voice.menu", node="story_after", topic=topic, i=index)
    return ctx.speaker.story(intro, audio, story.transcript, keys_line, key_url, after_url)


@bp.post("/stories/<topic>/key")
def story_key(topic: str) -> Response:
    """A key pressed while a story plays: 1 talk, 2 pause, 3 skip, 4 replay, 7 back."""
    ctx = current_ctx()
    index = _int_arg("i")
    key = request.form.get("Digits", "")
    if key == "1":
        return to_response(perform_action(ctx, "story_peer"))
    if key == "2":
        # Where the caller was: time since the story started, less the spoken introduction.
        elapsed = time.time() - _int_arg("t0") - _int_arg("lead")
        position = max(0.0, float(request.args.get("start") or 0) + elapsed - RESUME_REWIND_S)
        return to_response(ctx.speaker.wait_for_key(
            ctx.flow.text("story_paused"), ctx.url("voice.story_resume", topic=topic, i=index, start=round(position, 1))
        ))
    if key == "3":
        return to_response(_play_story(ctx, topic, index + 1))
    if key == "4":
        return to_response(_play_story(ctx, topic, index))
    if key == "7":
        stories_menu = ctx.flow.nodes["stories"]
        return to_response(ctx.speaker.menu(stories_menu, ctx.url("voice.answer", node="stories", attempt=0)))
    if key in ("0", "9"):
        return to_response(perform_action(ctx, "person" if key == "0" else "crisis"))
    # Any other key: the choices after the story.
    return menu("story_after")


@bp.post("/stories/<topic>/resume")
def story_resume(topic: str) -> Response:
    """Go on with a paused story from about where it stopped."""
    ctx = current_ctx()
    try:
        start = float(request.args.get("start") or 0)
    except ValueError:
        start = 0.0
    return to_response(_play_story(ctx, topic, _int_arg("i"), start_s=start))


# Voicemail ----------------------------------------------------------------------------


def _voicemail_twiml(ctx: Ctx, preface: list[str] | None = None) -> VoiceResponse:
    settings = services().settings
    lines = [*(preface or []), ctx.flow.text("voicemail_consent")]
    return ctx.speaker.record(
        lines,
        action_url=ctx.url("voice.voicemail_done"),
        status_url=ctx.url("voice.voicemail_recording"),
        no_message_url=ctx.url("voice.voicemail_none"),
        max_length=settings.record_max_s,
    )


@bp.post("/voicemail")
def voicemail() -> Response:
    """Consent notice, then record a message of up to three minutes."""
    return to_response(_voicemail_twiml(current_ctx()))


@bp.post("/voicemail/done")
def voicemail_done() -> Response:
    """After <Record>: confirm the message is saved."""
    ctx = current_ctx()
    session = get_session()
    call = find_or_create_call(session, ctx.call_sid)
    call.outcome = "voicemail"
    record_event(session, ctx.call_sid, "voicemail", None, request.form.get("RecordingDuration"))
    session.commit()
    return to_response(ctx.speaker.say_then_hangup([ctx.flow.text("voicemail_saved"), ctx.flow.text("goodbye")]))


@bp.post("/voicemail/none")
def voicemail_none() -> Response:
    """Nothing was recorded: say so and offer the main menu, never a silent hang-up."""
    ctx = current_ctx()
    return to_response(ctx.speaker.say_then_redirect(
        [ctx.flow.text("voicemail_empty")], ctx.url("voice.menu", node=ctx.flow.start)))


@bp.post("/voicemail/recording")
def voicemail_recording() -> Response:
    """Recording status callback: store the voicemail (pending) and enqueue its transcription."""
    form = request.form
    if form.get("RecordingStatus", "completed") != "completed":
        return to_response(VoiceResponse())
    voicemails.recording_done(get_session(), services(), form.get("RecordingSid", ""), form.get("RecordingUrl", ""),
                              form.get("CallSid", ""), request.args.get("lang"), _form_int("RecordingDuration"))
    return to_response(VoiceResponse())


def _form_int(name: str) -> int | None:
    try:
        return int(request.form.get(name, ""))
    except ValueError:
        return None


# Status and fallback ------------------------------------------------------------------


@bp.post("/status")
def status() -> Response:
    """Call status callback: the call ended (or changed state); record it."""
    form = request.form
    session = get_session()
    call = find_or_create_call(session, form.get("CallSid", ""))
    call.status = form.get("CallStatus", call.status)
    if call.status in ("completed", "busy", "failed", "no-answer", "canceled"):
        call.ended_at = call.ended_at or utcnow()
        call.duration_s = _form_int("CallDuration")
        call.outcome = call.outcome or "hung_up"
    session.commit()
    return to_response(VoiceResponse())


@bp.post("/fallback")
def fallback() -> Response:
    """Twilio's fallback URL: useful TwiML with no database and no Redis."""
    flows = services().flows
    lines = [(flows[lang], flows[lang].text("fallback")) for lang in ("en", "es") if lang in flows]
    return to_response(fallback_twiml(lines, services().settings.crisis_number))


@bp.errorhandler(Exception)
def on_error(exc: Exception) -> Response:
    """Any failure inside a voice route still answers the caller with TwiML, never HTTP 500."""
    if isinstance(exc, HTTPException):
        return exc  # type: ignore[return-value]
    log.exception("voice route failed: %s", request.path)
    try:
        get_session().rollback()
    except SQLAlchemyError:
        log.warning("rollback failed after a voice error", exc_info=True)
    ctx = current_ctx()
    errors = _int_arg("err")
    if errors >= 1:
        # A second failure in a row: do not loop; hand the caller to the crisis line.
        return fallback()
    return to_response(ctx.speaker.say_then_redirect(
        [ctx.flow.text("error")], ctx.url("voice.menu", node=ctx.flow.start, err=errors + 1)))
