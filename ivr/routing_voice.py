"""Webhooks of live peer routing: the caller's hold queue and bridge, the peer's ringing leg.

The flow actions ``peer``, ``story_peer`` and ``person`` (see :data:`ivr.voice.ACTIONS`) enter
here through :func:`talk_to_peer`. Logic lives in :mod:`ivr.routing`; this module only turns
webhooks into calls of it and TwiML from :mod:`ivr.twiml`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flask import Blueprint, Response, request, url_for
from twilio.twiml.voice_response import VoiceResponse

from callflows import Flow
from callflows import line, routing, stories
from callflows.calls import find_or_create_call, record_event
from callflows.peers import LIVE_LEGS, peers_on_shift
from ivr.db import get_session
from ivr.services import services
from ivr.signature import require_twilio_signature
from ivr.twiml import Speaker, to_response
from models import Peer, utcnow
from models.tables import PeerRequest, RingLeg

if TYPE_CHECKING:
    from ivr.voice import Ctx

log = logging.getLogger(__name__)
bp = Blueprint("routing", __name__, url_prefix="/peer")
bp.before_request(require_twilio_signature)

FINAL_CALL_STATUSES = ("completed", "busy", "failed", "no-answer", "canceled")
# Keys while on hold (said in the "hold_choices" phrase); 0 and 9 mean what they mean everywhere.
HOLD_KEYS = {"1": "stay", "2": "callback", "3": "message", "0": "message", "9": "crisis", "*": "repeat"}


def _flow(lang: str | None) -> Flow:
    flows = services().flows
    return flows.get(lang or "en") or flows["en"]


def _speaker(lang: str | None = None) -> Speaker:
    return Speaker(_flow(lang or request.args.get("lang")), request.args.get("slow") == "1")


def _url(endpoint: str, **values: object) -> str:
    """Absolute URL on PUBLIC_BASE_URL, keeping the caller's language and pace."""
    values.setdefault("lang", request.args.get("lang") or "en")
    if request.args.get("slow") == "1":
        values.setdefault("slow", 1)
    return services().settings.public_base_url + url_for(endpoint, **values)


# Entry from the caller's menus ----------------------------------------------------------


def talk_to_peer(ctx: Ctx, tag: str | None = None, none_on: str = "menu") -> VoiceResponse:
    """"Talk with a peer": ring available peers and hold the caller in the queue meanwhile."""
    session = get_session()
    svc = services()
    lang = ctx.flow.language
    now = utcnow()
    if peers_on_shift(session, lang) == 0:
        # Say so honestly and offer a callback or a message at once, not a wait for nobody.
        record_event(session, ctx.call_sid, "peer", None, "no peers on shift")
        session.commit()
        if none_on == "voicemail":
            return ctx.speaker.say_then_redirect([ctx.flow.text("peers_none_on")], ctx.url("voice.voicemail"))
        return ctx.speaker.menu(ctx.flow.nodes["no_peer"], ctx.url("voice.answer", node="no_peer", attempt=0),
                                preface=[ctx.flow.text("peers_none_on")])
    call = find_or_create_call(session, ctx.call_sid)
    session.flush()
    req = routing.open_request(session, ctx.call_sid, call.id, lang, tag, now)
    record_event(session, ctx.call_sid, "peer", None, f"request {req.id}" + (f" tag {tag}" if tag else ""))
    session.commit()
    routing.ring(session, svc, req, now)
    return ctx.speaker.enqueue(
        [ctx.flow.text("peer_finding")], routing.queue_name(lang),
        wait_url=ctx.url("routing.hold_wait", req_id=req.id),
        action_url=ctx.url("routing.hold_done", req_id=req.id),
    )


def talk_about_story(ctx: Ctx) -> VoiceResponse:
    """"Talk with a peer about this story": prefer a peer with that lived experience."""
    # The topic is in the path while a story plays, in the query at the menu after it.
    topic = (request.view_args or {}).get("topic") or request.args.get("topic", "")
    return talk_to_peer(ctx, tag=routing.TOPIC_TAGS.get(str(topic)))


def reach_person(ctx: Ctx) -> VoiceResponse:
    """Key 0: any peer who is free; with nobody on shift, a message (as before routing)."""
    return talk_to_peer(ctx, none_on="voicemail")


# The caller on hold ---------------------------------------------------------------------


def _request_for_caller(req_id: int) -> PeerRequest | None:
    req = get_session().get(PeerRequest, req_id)
    if req is None or req.call_sid != request.form.get("CallSid", ""):
        return None  # a request belongs to one call; never act on another caller's
    return req


def _position() -> int:
    try:
        return max(1, int(request.form.get("QueuePosition", "1")))
    except ValueError:
        return 1


def _wait_document(req: PeerRequest) -> VoiceResponse:
    session = get_session()
    speaker = _speaker(req.language)
    flow = speaker.flow
    position = _position()
    minutes = line.expected_wait_minutes(session, position, utcnow())
    lines = [flow.text("hold_position", position=position),
             flow.text("hold_wait", minutes=minutes) if minutes else flow.text("hold_wait_unknown")]
    story = stories.hold_story(session, req)
    audio = text = None
    if story is not None:
        from ivr.media import story_audio_url

        intro = flow.text("story_intro", title=story.title)
        if story.audio_path:
            lines.append(intro)
            audio = story_audio_url(story.id)
        else:
            text = intro + " " + story.transcript
    # The choices come after about a minute of story: a menu once a minute, not a nag.
    options = [flow.text("hold_choices"), flow.text("global_keys")]
    return speaker.hold(lines, audio, text, options, _url("routing.hold_choice", req_id=req.id,
                                                          lang=req.language))


@bp.post("/hold/<int:req_id>/wait")
def hold_wait(req_id: int) -> Response:
    """Enqueue waitUrl: position, expected wait, a peer story, the choices; then Twilio loops it."""
    session = get_session()
    req = _request_for_caller(req_id)
    if req is None:
        return to_response(_speaker().leave_queue([]))
    # Every poll is also a reconciler: frees peers whose wrap-up is over and offers them.
    line.reconcile(session, services(), utcnow())
    session.refresh(req)
    return to_response(_wait_document(req))


@bp.post("/hold/<int:req_id>/choice")
def hold_choice(req_id: int) -> Response:
    """A key pressed while waiting: 1 stay, 2 callback (keeps the place), 3 or 0 message, 9 crisis."""
    session = get_session()
    svc = services()
    req = _request_for_caller(req_id)
    if req is None:
        return to_response(_speaker().leave_queue([]))
    speaker = _speaker(req.language)
    digits = request.form.get("Digits", "")
    target = HOLD_KEYS.get(digits, "stay")
    record_event(session, req.call_sid, "hold", digits or "no-input", target)
    session.commit()
    now = utcnow()
    if target == "callback":
        # After <Leave>, hold_done hands over to the callback flow, which keeps req.arrived_at.
        line.caller_left(session, svc, req, "callback", now)
        return to_response(speaker.leave_queue([]))
    if target == "message":
        line.caller_left(session, svc, req, "message", now)
        return to_response(speaker.leave_queue([]))
    if target == "crisis":
        line.caller_left(session, svc, req, "crisis", now)
        return to_response(speaker.leave_queue([]))
    if target == "repeat":
        return to_response(_wait_document(req))
    # Stay (1, or any other key): the wait document ends and the caller keeps their place.
    return to_response(_stay(speaker))


def _stay(speaker: Speaker) -> VoiceResponse:
    twiml = VoiceResponse()
    speaker.say(twiml, speaker.text("hold_stay"))
    return twiml


@bp.post("/hold/<int:req_id>/done")
def hold_done(req_id: int) -> Response:
    """Enqueue action: the caller left the queue (hung up, chose something, or an error)."""
    session = get_session()
    req = _request_for_caller(req_id)
    speaker = _speaker()
    if req is None:
        return to_response(speaker.say_then_hangup([speaker.text("goodbye")]))
    result = request.form.get("QueueResult", "")
    now = utcnow()
    if result == "hangup":
        line.caller_left(session, services(), req, "abandoned", now)
        return to_response(VoiceResponse())
    if req.status == "callback":
        from ivr import callbacks_voice  # registered after this blueprint

        return to_response(callbacks_voice.after_hold(req))
    if req.status == "message":
        return to_response(speaker.say_then_redirect([], _url("voice.voicemail", lang=req.language)))
    if req.status == "crisis":
        return to_response(speaker.say_then_redirect([], _url("voice.action", name="crisis", lang=req.language)))
    if req.status == "connected":
        return to_response(speaker.say_then_redirect([], _url("routing.caller_connect", req_id=req.id)))
    # queue-full, system-error...: never a dead end; callback or message at once.
    line.caller_left(session, services(), req, "abandoned", now)
    return to_response(speaker.say_then_redirect(
        [speaker.text("no_peer_yet")], _url("voice.menu", node="no_peer", lang=req.language)))


@bp.post("/caller/<int:req_id>/connect")
def caller_connect(req_id: int) -> Response:
    """The caller, redirected out of the queue once a peer accepted: join the private room."""
    req = _request_for_caller(req_id)
    speaker = _speaker()
    if req is None or req.status != "connected":
        return to_response(speaker.say_then_redirect(
            [speaker.text("no_peer_yet")], _url("voice.menu", node="no_peer")))
    return to_response(speaker.conference([speaker.text("peer_connecting")], routing.room_name(req),
                                          _url("routing.caller_done", req_id=req.id)))


@bp.post("/caller/<int:req_id>/done")
def caller_done(req_id: int) -> Response:
    """The call with the peer is over, on the caller's side."""
    req = _request_for_caller(req_id)
    speaker = _speaker()
    if req is not None:
        routing.caller_call_over(get_session(), req, utcnow())
    return to_response(speaker.say_then_hangup([speaker.text("peer_call_over"), speaker.text("goodbye")]))


# The peer's leg -------------------------------------------------------------------------


def _leg() -> tuple[RingLeg, PeerRequest, Peer] | None:
    session = get_session()
    leg = session.get(RingLeg, int(request.view_args["leg_id"]))  # type: ignore[index]
    if leg is None or (leg.call_sid and leg.call_sid != request.form.get("CallSid", "")):
        return None
    req = session.get(PeerRequest, leg.request_id)
    peer = session.get(Peer, leg.peer_id)
    if req is None or peer is None:
        return None
    return leg, req, peer


def _peer_speaker(peer: Peer) -> Speaker:
    languages = [lang for lang in (peer.languages or []) if lang in services().flows]
    return Speaker(_flow(languages[0] if languages else "en"))


@bp.post("/leg/<int:leg_id>/whisper")
def leg_whisper(leg_id: int) -> Response:
    """A peer picked up: the whisper (language, wanted experience), press 1 to accept."""
    found = _leg()
    if found is None:
        return to_response(VoiceResponse())
    leg, req, peer = found
    speaker = _peer_speaker(peer)
    if leg.status not in LIVE_LEGS:
        return to_response(speaker.say_then_hangup(
            [speaker.text("peer_taken" if req.status in ("connected", "ended") else "peer_caller_gone")]))
    routing.leg_answered(get_session(), leg)
    language = speaker.text(f"lang_{req.language}") if f"lang_{req.language}" in speaker.flow.strings \
        else req.language
    # Never the caller's number: only the language and the experience they asked for.
    line = speaker.text("whisper", language=language)
    if req.wanted_tag == routing.TOPIC_TAGS["medication"]:
        line += " " + speaker.text("whisper_medication")
    action = services().settings.public_base_url + url_for("routing.leg_answer", leg_id=leg.id)
    return to_response(speaker.whisper(line, action, [speaker.text("whisper_missed")]))


@bp.post("/leg/<int:leg_id>/answer")
def leg_answer(leg_id: int) -> Response:
    """The peer's key: only 1 bridges; the first 1 wins, a later one hears the call was taken."""
    found = _leg()
    if found is None:
        return to_response(VoiceResponse())
    leg, req, peer = found
    speaker = _peer_speaker(peer)
    if request.form.get("Digits") != "1":
        return to_response(speaker.say_then_hangup([speaker.text("whisper_missed")]))
    outcome = routing.accept(get_session(), services(), leg, utcnow())
    if outcome == "accepted":
        after = services().settings.public_base_url + url_for("routing.leg_after", leg_id=leg.id)
        return to_response(speaker.conference([speaker.text("peer_accepted")], routing.room_name(req), after))
    return to_response(speaker.say_then_hangup([speaker.text("peer_taken" if outcome == "taken"
                                                             else "peer_caller_gone")]))


@bp.post("/leg/<int:leg_id>/after")
def leg_after(leg_id: int) -> Response:
    """The peer's side of the conversation ended."""
    found = _leg()
    speaker = _peer_speaker(found[2]) if found else _speaker()
    return to_response(speaker.say_then_hangup([speaker.text("peer_thanks")]))


@bp.post("/leg/<int:leg_id>/status")
def leg_status(leg_id: int) -> Response:
    """Status callback of a peer leg: answered, or final (no answer, busy, completed...)."""
    found = _leg()
    if found is None:
        return to_response(VoiceResponse())
    leg, _req, _peer = found
    status = request.form.get("CallStatus", "")
    session = get_session()
    if status in ("in-progress", "answered"):
        routing.leg_answered(session, leg)
    elif status in FINAL_CALL_STATUSES:
        line.ring_leg_ended(session, services(), leg, utcnow())
    return to_response(VoiceResponse())
