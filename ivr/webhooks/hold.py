"""The caller's side of live peer routing: asking for a peer, the hold queue, and the bridge to the peer.

Registers the flow actions ``peer``, ``story_peer`` and ``person``. The rules are in
:mod:`callflows.routing` (requests, ringing, the first pickup) and :mod:`callflows.line`
(the one arrival-ordered line); a peer's ringing leg is :mod:`ivr.webhooks.peer_legs`.
"""
from __future__ import annotations

import dataclasses
from datetime import datetime

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows import Flow, callers, escalation, hours, line, routing, survey
from callflows import hold as holding
from callflows.announce import blocked_notice, spoken_opening
from callflows.calls import FINAL_CALL_STATUSES, commit_step, record_event
from callflows.hold import HoldRound
from callflows.times import aware
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import empty, to_response
from ivr.webhooks import actions
from ivr.webhooks.blueprints import routing as bp
from ivr.webhooks.context import Ctx, current_ctx, int_param
from ivr.webhooks.failures import Audience, heard_by
from ivr.webhooks.story_audio import story_audio_url
from models import utcnow
from models.tables import PeerRequest

# The choices on hold, in the order they are said: key, what it does, the phrase naming it.
HOLD_CHOICES = (("1", "stay", "hold_keep_waiting"), ("2", "callback", "hold_callback"),
                ("3", "message", "hold_message"))
# Every key on hold. 0 keeps the caller in line for the next person (leaving for voicemail would
# cancel the peers being rung); 9 is the crisis line (crisis.py moves the call first, through the
# REST API; "crisis" here is the way out when that call fails); * says the choices again.
HOLD_KEYS = {**{key: choice for key, choice, _phrase in HOLD_CHOICES}, "0": "person", "9": "crisis", "*": "repeat"}
# Choices that leave the queue; hold_done then carries them out.
LEAVING = ("callback", "message", "crisis")


# Entry from the caller's menus ----------------------------------------------------------


def talk_to_peer(ctx: Ctx, tag: str | None = None, none_on: str = "menu") -> VoiceResponse:
    """Ring available peers and hold the caller in the queue meanwhile (honest when nobody is on shift)."""
    now = utcnow()
    turned_away = _turned_away(ctx, none_on, now)
    if turned_away is not None:
        return turned_away
    req = routing.ask_for_peer(get_session(), services(), ctx.call_sid, ctx.flow.language, tag, now)
    if req is None:
        # Say so honestly and offer a callback or a message at once, not a wait for nobody.
        if none_on == "voicemail":
            return ctx.speaker.say_then_redirect([ctx.flow.text("peers_none_on")], ctx.url("voice.voicemail"))
        return ctx.menu("no_peer", preface=[ctx.flow.text("peers_none_on")])
    return ctx.speaker.enqueue(
        [ctx.flow.text("peer_finding")], routing.queue_name(ctx.flow.language),
        wait_url=ctx.url("routing.hold_wait", req_id=req.id),
        action_url=ctx.url("routing.hold_done", req_id=req.id),
    )


def _turned_away(ctx: Ctx, none_on: str, now: datetime) -> VoiceResponse | None:
    """A blocked caller, a closed line or a caller over their daily limit: say so kindly, keep every safe option.

    Nobody is put on hold for a peer who is not coming; the crisis key (9) was answered before
    any of this, so no block, limit or closure ever stands in its way.
    """
    session = get_session()
    settings = services().settings
    flow = ctx.flow
    gate = callers.access(session, settings, ctx.call_sid, now)
    blocked = blocked_notice(session, settings, flow, ctx.call_sid, now) if gate == "blocked" else None
    if blocked is not None:
        record_event(session, ctx.call_sid, "peer", None, "blocked")
        session.commit()
        return ctx.menu("blocked", preface=[blocked])
    schedule = hours.load_schedule(session, settings.zone, now)
    if not schedule.is_open(now):
        record_event(session, ctx.call_sid, "peer", None, "line closed")
        session.commit()
        closed = [flow.text("closed_now"), spoken_opening(schedule.next_opening(now), now, settings, flow)]
        if none_on == "voicemail":  # key 0: a person, else a message
            return ctx.speaker.say_then_redirect(closed, ctx.url("voice.voicemail"))
        return ctx.menu("closed", preface=closed)
    if gate == "limit":
        record_event(session, ctx.call_sid, "peer", None, "over daily limit")
        session.commit()
        return ctx.menu("limit_reached", preface=[flow.text("limit_reached")])
    return None


@actions.action("peer")
def peer(ctx: Ctx) -> VoiceResponse:
    """"Talk with a peer"."""
    return talk_to_peer(ctx)


@actions.action("story_peer")
def story_peer(ctx: Ctx) -> VoiceResponse:
    """"Talk with a peer about this story": prefer a peer with that lived experience."""
    # The topic is in the path while a story plays, in the query at the menu after it.
    topic = (request.view_args or {}).get("topic") or request.args.get("topic", "")
    return talk_to_peer(ctx, tag=routing.TOPIC_TAGS.get(str(topic)))


@actions.action("person")
def person(ctx: Ctx) -> VoiceResponse:
    """Key 0: any peer who is free; with nobody on shift, a message."""
    return talk_to_peer(ctx, none_on="voicemail")


# The caller on hold ---------------------------------------------------------------------


def _request_for_caller(req_id: int) -> PeerRequest | None:
    return routing.request_for_call(get_session(), req_id, request.form.get("CallSid", ""))


def _wait_document(hold: HoldRound) -> VoiceResponse:
    ctx = current_ctx(hold.language)
    flow = ctx.flow
    # The line's own order (callbacks that came first count), not Twilio's queue position alone.
    lines = [flow.text("hold_position", position=hold.position),
             flow.counted("hold_wait", hold.minutes, minutes=hold.minutes) if hold.minutes
             else flow.text("hold_wait_unknown")]
    if hold.nobody_on:
        # Everyone signed off while this caller waited: say so, and the choices follow at once.
        lines = [flow.text("hold_position", position=hold.position), flow.text("hold_nobody_on")]
    story = hold.story
    audio = text = None
    if story is not None:
        intro = flow.text("story_intro", title=story.title)
        if story.audio_path:
            lines.append(intro)
            audio = story_audio_url(story.id)
        else:
            text = intro + " " + story.transcript
    # The choices come after about a minute of story: a menu once a minute, not a nag.
    return ctx.speaker.hold(lines, audio, text, _choices(flow), ctx.url("routing.hold_choice", req_id=hold.req_id))


def _choices(flow: Flow) -> list[str]:
    """The hold choices, each named before its key as in every menu, then the keys that work everywhere."""
    named = [flow.text("press", label=flow.text(phrase), key=key) for key, _choice, phrase in HOLD_CHOICES]
    return [flow.text("hold_choices"), *named, flow.text("global_keys")]


@bp.post("/hold/<int:req_id>/wait")
@heard_by(Audience.ON_HOLD)
def hold_wait(req_id: int) -> Response:
    """Enqueue waitUrl: position, expected wait, a peer story, the choices; then Twilio loops it."""
    svc = services()
    now = utcnow()
    waiting = holding.hold_round(svc, req_id, request.form.get("CallSid", ""), now)
    if waiting is None:
        return to_response(current_ctx().speaker.leave_queue([]))
    if waiting.reconcile:
        # A poll is also a reconciler: frees peers whose wrap-up is over and offers the free ones
        # to the line. The round's read said whether there is anything to do (on a busy line,
        # seldom); what the caller hears does not depend on it (their place, the peers on shift).
        line.reconcile(get_session(), svc, now)
    return to_response(_wait_document(waiting))


@bp.post("/hold/<int:req_id>/choice")
@heard_by(Audience.ON_HOLD)
def hold_choice(req_id: int) -> Response:
    """A key on hold: 1 stay, 2 callback (keeps the place), 3 message, 0 stay for a person, 9 crisis, * choices."""
    session = get_session()
    req = _request_for_caller(req_id)
    if req is None:
        return to_response(current_ctx().speaker.leave_queue([]))
    ctx = current_ctx(req.language)
    digits = request.form.get("Digits", "")
    target = HOLD_KEYS.get(digits, "stay")
    record_event(session, req.call_sid, "hold", digits or "no-input", target)
    commit_step(session)
    if target in LEAVING:
        # After <Leave>, hold_done carries the choice out (a callback keeps req.arrived_at).
        line.caller_left(session, services(), req, target, utcnow())
        return to_response(ctx.speaker.leave_queue([]))
    if target == "repeat":
        # Only the choices, at once (not the position and the story again); silence then
        # ends the document and Twilio plays the waitUrl as before.
        return to_response(ctx.speaker.hold([], None, None, _choices(ctx.flow),
                                            ctx.url("routing.hold_choice", req_id=req.id)))
    if target == "person":
        # Already waiting for a person: say so and keep the place (the peers being rung keep ringing).
        return to_response(ctx.speaker.say_only([ctx.flow.text("hold_person")]))
    # Stay (1, or any other key): the wait document ends and the caller keeps their place.
    return to_response(ctx.speaker.say_only([ctx.flow.text("hold_stay")]))


@bp.post("/hold/<int:req_id>/done")
def hold_done(req_id: int) -> Response:
    """Enqueue action: the caller left the queue (hung up, chose something, or an error)."""
    session = get_session()
    req = _request_for_caller(req_id)
    if req is None:
        ctx = current_ctx()
        return to_response(ctx.speaker.say_then_hangup([ctx.flow.text("goodbye")]))
    now = utcnow()
    if line.left_queue(session, services(), req, request.form.get("QueueResult", ""), int_param("back"), now):
        return to_response(empty())  # hung up, a late word from an old queue, or gone to the crisis line
    ctx = current_ctx(req.language)
    if req.status == "callback":
        # The callback request, keeping the caller's place in line.
        return to_response(actions.perform(dataclasses.replace(ctx, arrived_at=aware(req.arrived_at)), "callback"))
    if req.status == "message":
        return to_response(ctx.speaker.say_then_redirect([], ctx.url("voice.voicemail")))
    if req.status == "crisis":
        return to_response(ctx.speaker.say_then_redirect([], ctx.url("voice.action", name="crisis")))
    if req.status == "connected":
        return to_response(ctx.speaker.say_then_redirect([], ctx.url("routing.caller_connect", req_id=req.id)))
    # queue-full, system-error...: never a dead end; callback or message at once.
    line.caller_left(session, services(), req, "abandoned", now)
    return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("no_peer_yet")],
                                                     ctx.url("voice.menu", node="no_peer")))


def _back_in_line(ctx: Ctx, req: PeerRequest, lines: list[str]) -> VoiceResponse:
    """Say ``lines``, then the caller waits in the queue again under the same request (their place kept)."""
    return ctx.speaker.enqueue(lines, routing.queue_name(req.language),
                               wait_url=ctx.url("routing.hold_wait", req_id=req.id),
                               action_url=ctx.url("routing.hold_done", req_id=req.id,
                                                  back=routing.times_back(get_session(), req.id)))


@bp.post("/caller/<int:req_id>/back")
def caller_back(req_id: int) -> Response:
    """The peer who accepted dropped before the conversation: the caller is told and waits again, keeping their place."""
    req = _request_for_caller(req_id)
    ctx = current_ctx()
    if req is None or req.status not in routing.OPEN_REQUESTS:
        return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("no_peer_yet")],
                                                         ctx.url("voice.menu", node="no_peer")))
    return to_response(_back_in_line(ctx, req, [ctx.flow.text("peer_lost")]))


@bp.post("/caller/<int:req_id>/connect")
def caller_connect(req_id: int) -> Response:
    """The caller, redirected out of the queue once a peer accepted: join the private room."""
    req = _request_for_caller(req_id)
    ctx = current_ctx()
    if req is not None and req.status in routing.OPEN_REQUESTS:  # the peer dropped on the way: back in line
        return to_response(_back_in_line(ctx, req, [ctx.flow.text("peer_lost")]))
    if req is not None and routing.peer_left_before_caller(get_session(), req):
        # The peer hung up in the room before the caller got there: never into an empty room; back in line.
        return to_response(_back_in_line(ctx, req, [ctx.flow.text("peer_lost")]))
    if req is None or req.status != "connected":
        return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("no_peer_yet")],
                                                         ctx.url("voice.menu", node="no_peer")))
    # The notice about listeners and the crisis line (call_notice, in the flow files; empty says nothing).
    lines = [ctx.flow.text("peer_connecting"), *filter(None, [ctx.flow.strings.get("call_notice")])]
    return to_response(ctx.speaker.conference(lines, routing.room_name(req),
                                              ctx.url("routing.caller_done", req_id=req.id)))


@bp.post("/caller/<int:req_id>/done")
def caller_done(req_id: int) -> Response:
    """The call with the peer is over, on the caller's side."""
    req = _request_for_caller(req_id)
    ctx = current_ctx()
    if req is not None:
        routing.caller_call_over(get_session(), req, utcnow())
        escalation.caller_left(get_session(), services(), req, utcnow())  # stop the legs still ringing for them
        # The peer ended the conversation and the caller is still on the line (a caller who hung
        # up comes here with a final CallStatus): the optional survey, when the line asks for it.
        if (services().settings.caller_survey and survey.may_ask(req)
                and request.form.get("CallStatus") not in FINAL_CALL_STATUSES):
            return to_response(ctx.speaker.say_then_redirect(
                [ctx.flow.text("peer_call_over")],
                ctx.url("routing.survey_start", req_id=req.id, question=survey.QUESTIONS[0])))
    return to_response(ctx.speaker.say_then_hangup([ctx.flow.text("peer_call_over"), ctx.flow.text("goodbye")]))
