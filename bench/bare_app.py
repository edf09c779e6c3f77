"""The baseline for bench/webhooks.py: a bare Flask app answering every voice POST with one
fixed TwiML menu (no signature check, no database, no Redis), served by the same gunicorn.

Run by the bench as ``gunicorn --pythonpath bench bare_app:app``; BARE_PUBLIC_BASE_URL is the
base of the Gather action, so a client can walk it exactly like the real menus.
"""
from __future__ import annotations

import os

from flask import Flask, Response, jsonify
from twilio.twiml.voice_response import VoiceResponse

app = Flask(__name__)


def fixed_menu(base_url: str) -> str:
    """The fixed TwiML document: a <Gather> with one <Say>, built once at import."""
    twiml = VoiceResponse()
    gather = twiml.gather(input="dtmf speech", action=f"{base_url}/voice/next", method="POST", timeout=10,
                          num_digits=1, action_on_empty_result=True)
    gather.say("What would you like to do? To talk with a peer, press 1. To hear stories from peers, press 2.",
               voice="Polly.Joanna", language="en-US")
    return str(twiml)


DOCUMENT = fixed_menu(os.environ.get("BARE_PUBLIC_BASE_URL", "http://127.0.0.1:5001").rstrip("/"))


@app.post("/voice/<path:_rest>")
def voice(_rest: str) -> Response:
    """Every voice URL answers with the same menu."""
    return Response(DOCUMENT, mimetype="text/xml")


@app.get("/healthz")
def healthz() -> Response:
    """Readiness probe for the bench."""
    return jsonify(ok=True)
