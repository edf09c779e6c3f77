"""Voicemail: the consent notice and <Record>, the confirmation, and the recording's status callback.

Registers the flow action ``voicemail``. The recording is stored and transcribed by the rules
(:mod:`callflows.voicemails`) and a background job, never inside the request.
"""
from __future__ import annotations

from flask import Response, request
from twilio.twiml.voice_response import VoiceResponse

from callflows import hours, voicemails
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import empty, to_response
from ivr.webhooks import actions
from ivr.webhooks.blueprints import voice as bp
from ivr.webhooks.context import MAX_PARAM, Ctx, current_ctx, int_param
from ivr.webhooks.failures import Audience, heard_by
from models import utcnow


@actions.action("voicemail")
def record_message(ctx: Ctx) -> VoiceResponse:
    """Consent notice, then record a message (its length capped by the settings)."""
    return ctx.speaker.record(
        [ctx.flow.text("voicemail_consent")],
        action_url=ctx.url("voice.voicemail_done"),
        status_url=ctx.url("voice.voicemail_recording"),
        no_message_url=ctx.url("voice.voicemail_none"),
        max_length=services().settings.record_max_s,
    )


@bp.post("/voicemail")
def voicemail() -> Response:
    """Consent notice, then record a message of up to three minutes."""
    return to_response(record_message(current_ctx()))


@bp.post("/voicemail/done")
def voicemail_done() -> Response:
    """After <Record>: confirm the message is saved, and when the team may check it (not "soon" on a closed line)."""
    ctx = current_ctx()
    session = get_session()
    now = utcnow()
    # Read in the transaction that records the message: a supervisor checks messages, and while
    # the line is closed that may not be before it opens, so the caller is not promised "soon".
    is_open = hours.load_schedule(session, services().settings.zone, now).is_open(now)
    voicemails.message_left(session, ctx.call_sid, _duration())
    saved = ctx.flow.text("voicemail_saved" if is_open else "voicemail_saved_closed")
    return to_response(ctx.speaker.say_then_hangup([saved, ctx.flow.text("goodbye")]))


@bp.post("/voicemail/none")
def voicemail_none() -> Response:
    """Nothing was recorded: say so and offer the main menu, never a silent hang-up."""
    ctx = current_ctx()
    return to_response(ctx.speaker.say_then_redirect([ctx.flow.text("voicemail_empty")], ctx.main_menu_url))


@bp.post("/voicemail/recording")
@heard_by(Audience.NOBODY)
def voicemail_recording() -> Response:
    """Recording status callback: store the voicemail (pending) and enqueue its transcription."""
    form = request.form
    if form.get("RecordingStatus", "completed") != "completed":
        return to_response(empty())
    voicemails.recording_done(get_session(), services(), form.get("RecordingSid", ""), form.get("RecordingUrl", ""),
                              form.get("CallSid", ""), request.args.get("lang"), _duration())
    return to_response(empty())


def _duration() -> int | None:
    """RecordingDuration as sent, negative included (Twilio's -1 means unknown); the rules judge it."""
    return int_param("RecordingDuration", None, low=-MAX_PARAM, form=True)
