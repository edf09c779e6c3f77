"""Callback webhooks (being built)."""
from __future__ import annotations

from twilio.twiml.voice_response import VoiceResponse

from ivr.routing_voice import _speaker
from models.tables import PeerRequest


def after_hold(req: PeerRequest) -> VoiceResponse:
    """The caller left the hold queue for a callback: the callback flow, keeping their arrival time."""
    speaker = _speaker(req.language)
    return speaker.say_then_hangup([speaker.text("goodbye")])
