"""Peer stories on the phone: play one by topic, and the keys that pause, skip, replay or go back.

Registers the flow actions ``story:<topic>``, ``story_replay`` and ``story_next``.
"""
from __future__ import annotations

import math
import time

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows.calls import record_event
from callflows.stories import approved_stories
from ivr.db import get_session
from ivr.twiml import to_response
from ivr.webhooks import actions
from ivr.webhooks.blueprints import voice as bp
from ivr.webhooks.context import Ctx, current_ctx, int_param, seconds_param
from ivr.webhooks.story_audio import story_audio_url

SPEECH_WORDS_PER_S = 2.5  # rough rate of <Say>, to estimate where a paused story stopped
RESUME_REWIND_S = 3.0
MAX_STORY_INDEX = 10_000  # more stories than any topic has: past the last one says so
MAX_LEAD_S = 3600  # the spoken introduction before a story's audio
MAX_EPOCH_S = 2**40  # t0 is the epoch second a story started


def play_story(ctx: Ctx, topic: str, index: int, start_s: float = 0.0) -> VoiceResponse:
    """Play story ``index`` of ``topic`` inside a one-key gather (the stories menu when there is none)."""
    session = get_session()
    stories = approved_stories(session, topic, ctx.flow.language)
    if not stories:
        return ctx.menu("stories", preface=[ctx.flow.text("stories_none")])
    if index >= len(stories):
        return ctx.menu("stories", preface=[ctx.flow.text("story_end")])
    story = stories[index]
    record_event(session, ctx.call_sid, "story", None, f"{topic}:{story.id}")
    session.commit()
    audio = story_audio_url(story.id, start_s) if story.audio_path else None
    intro = ctx.flow.text("story_intro", title=story.title)
    keys_line = ctx.flow.text("story_keys")
    spoken_s = (len(intro.split()) + len(keys_line.split())) / SPEECH_WORDS_PER_S * (1.25 if ctx.slow else 1.0)
    key_url = ctx.url("voice.story_key", topic=topic, i=index, t0=int(time.time()),
                      start=round(start_s, 1), lead=math.ceil(spoken_s))
    after_url = ctx.url("voice.menu", node="story_after", topic=topic, i=index)
    return ctx.speaker.story(intro, audio, story.transcript, keys_line, key_url, after_url)


@actions.topic_action("story")
def story(ctx: Ctx, topic: str) -> VoiceResponse:
    """``story:<topic>``: the first story of a topic."""
    return play_story(ctx, topic, 0)


def _story_again(ctx: Ctx, delta: int) -> VoiceResponse:
    topic = request.args.get("topic", "")
    if not topic:
        return ctx.menu("stories")
    return play_story(ctx, topic, int_param("i", high=MAX_STORY_INDEX) + delta)


@actions.action("story_replay")
def story_replay(ctx: Ctx) -> VoiceResponse:
    """After a story: hear it again."""
    return _story_again(ctx, 0)


@actions.action("story_next")
def story_next(ctx: Ctx) -> VoiceResponse:
    """After a story: the next one of the same topic."""
    return _story_again(ctx, 1)


@bp.post("/stories/<topic>/key")
def story_key(topic: str) -> Response:
    """A key pressed while a story plays: 1 talk, 2 pause, 3 skip, 4 replay, 7 back."""
    ctx = current_ctx()
    index = int_param("i", high=MAX_STORY_INDEX)
    key = request.form.get("Digits", "")
    if key == "1":
        return to_response(actions.perform(ctx, "story_peer"))
    if key == "2":
        # Where the caller was: time since the story started, less the spoken introduction.
        elapsed = time.time() - int_param("t0", high=MAX_EPOCH_S) - int_param("lead", high=MAX_LEAD_S)
        position = max(0.0, seconds_param("start") + elapsed - RESUME_REWIND_S)
        return to_response(ctx.speaker.wait_for_key(
            ctx.flow.text("story_paused"), ctx.url("voice.story_resume", topic=topic, i=index, start=round(position, 1))
        ))
    if key == "3":
        return to_response(play_story(ctx, topic, index + 1))
    if key == "4":
        return to_response(play_story(ctx, topic, index))
    if key == "7":
        return to_response(ctx.menu("stories"))
    if key in ("0", "9"):
        return to_response(actions.perform(ctx, "person" if key == "0" else "crisis"))
    # Any other key: the choices after this story (as when it ends), so "again" and "next" know which.
    return to_response(ctx.menu("story_after", carry={"topic": topic, "i": index}))


@bp.post("/stories/<topic>/resume")
def story_resume(topic: str) -> Response:
    """Go on with a paused story from about where it stopped."""
    ctx = current_ctx()
    return to_response(play_story(ctx, topic, int_param("i", high=MAX_STORY_INDEX), start_s=seconds_param("start")))
