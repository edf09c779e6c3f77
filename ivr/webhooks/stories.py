"""Peer stories on the phone: play one by topic, and one key map while it plays, while it is paused and after it.

The keys are the options of the ``story_after`` menu (1 talk with a peer about this story,
3 the next story, 4 hear it again, 5 back to the topics) in every state, plus 2 to pause and to
go on; * says the choices (while a story plays, it pauses it first), 0 a person, 9 the crisis
line (answered first by :mod:`ivr.webhooks.crisis`). While paused, any other key goes on.

Registers the flow actions ``story:<topic>``, ``story_replay`` and ``story_next``.
"""
from __future__ import annotations

import math
import time
from typing import Iterable

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows.calls import commit_step, record_event
from callflows.loader import STORY_MENU, STORY_PAUSE_KEY
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
    commit_step(session)
    audio = story_audio_url(story.id, start_s) if story.audio_path else None
    intro = ctx.flow.text("story_intro", title=story.title)
    keys = _story_keys(ctx, "story_pause")
    words = sum(len(line.split()) for line in (intro, *keys))
    spoken_s = words / SPEECH_WORDS_PER_S * (1.25 if ctx.slow else 1.0)
    key_url = ctx.url("voice.story_key", topic=topic, i=index, t0=int(time.time()),
                      start=round(start_s, 1), lead=math.ceil(spoken_s))
    after_url = ctx.url("voice.menu", node=STORY_MENU, topic=topic, i=index)
    return ctx.speaker.story(intro, audio, story.transcript, keys, key_url, after_url)


def _story_keys(ctx: Ctx, pause_label: str) -> list[str]:
    """The story's keys in order, each named before its key: the after-story menu's options and the pause key."""
    named = [(o.key, o.label) for o in ctx.flow.nodes[STORY_MENU].options]
    named.append((STORY_PAUSE_KEY, ctx.flow.text(pause_label)))
    return [ctx.flow.text("press", label=label, key=key) for key, label in sorted(named)]


def _paused(ctx: Ctx, topic: str, index: int, position: float, preface: Iterable[str] = ()) -> VoiceResponse:
    """The story stopped at ``position`` seconds: the choices, then a long wait for one key."""
    lines = [*preface, ctx.flow.text("story_paused"), *_story_keys(ctx, "story_go_on"), ctx.flow.text("global_keys")]
    return ctx.speaker.wait_for_key(
        lines, ctx.url("voice.story_resume", topic=topic, i=index, start=round(position, 1)))


def _story_choice(ctx: Ctx, key: str) -> VoiceResponse | None:
    """What a key does in every state of a story: 0, 9 and the after-story menu's options (None for the others)."""
    if key in ("0", "9"):  # 9 reaches here only when crisis.py could not answer first
        return actions.perform(ctx, "person" if key == "0" else "crisis")
    option = ctx.flow.nodes[STORY_MENU].option_for_key(key)
    if option is None:
        return None
    if option.target.startswith("action:"):
        return actions.perform(ctx, option.target.removeprefix("action:"))
    return ctx.menu(option.target)


@actions.topic_action("story")
def story(ctx: Ctx, topic: str) -> VoiceResponse:
    """``story:<topic>``: the first story of a topic."""
    return play_story(ctx, topic, 0)


def _story_again(ctx: Ctx, delta: int) -> VoiceResponse:
    # The topic is in the path while a story plays or is paused, in the query at the menu after it.
    topic = str((request.view_args or {}).get("topic") or request.args.get("topic", ""))
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
    """A key pressed while a story plays: 1 talk, 2 or * pause (with the choices), 3 next, 4 again, 5 topics."""
    ctx = current_ctx()
    index = int_param("i", high=MAX_STORY_INDEX)
    key = request.form.get("Digits", "")
    chosen = _story_choice(ctx, key)
    if chosen is not None:
        return to_response(chosen)
    # Pause: where the caller was is the time since the story started, less the spoken introduction.
    elapsed = time.time() - int_param("t0", high=MAX_EPOCH_S) - int_param("lead", high=MAX_LEAD_S)
    position = max(0.0, seconds_param("start") + elapsed - RESUME_REWIND_S)
    # 2 and * pause; another key pauses too (saying so when it is a digit), so a stray key never loses the place.
    unused = len(key) == 1 and key.isdigit() and key != STORY_PAUSE_KEY
    sorry = [ctx.flow.text("invalid", key=key)] if unused else []
    return to_response(_paused(ctx, topic, index, position, preface=sorry))


@bp.post("/stories/<topic>/resume")
def story_resume(topic: str) -> Response:
    """A key while a story is paused (or the long wait is over): go on from about where it stopped, or a choice."""
    ctx = current_ctx()
    index = int_param("i", high=MAX_STORY_INDEX)
    position = seconds_param("start")
    key = request.form.get("Digits", "")
    if key == "*":
        return to_response(_paused(ctx, topic, index, position))
    chosen = _story_choice(ctx, key)
    if chosen is not None:
        return to_response(chosen)
    # 2, any other key, or nothing at all: go on with the story.
    return to_response(play_story(ctx, topic, index, start_s=position))
