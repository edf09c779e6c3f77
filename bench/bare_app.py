"""The baseline for bench/webhooks.py and bench/load.py: a bare Flask app answering every voice
POST with one fixed TwiML menu (no database, no Redis), served by the same gunicorn.

It checks each request's X-Twilio-Signature as the least a Twilio webhook must do (one HMAC
of the URL and the form, as peerline does when the signature is good), when BARE_AUTH_TOKEN is
set (the benches set it): a route that skipped it would not be a fair baseline.

Run by the bench as ``gunicorn --pythonpath bench bare_app:app``; BARE_PUBLIC_BASE_URL is the
base of the Gather action, so a client can walk it exactly like the real menus.
"""
from __future__ import annotations

import hmac
import os

from flask import Flask, Response, abort, jsonify, request
from twilio.request_validator import RequestValidator
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


BASE_URL = os.environ.get("BARE_PUBLIC_BASE_URL", "http://127.0.0.1:5001").rstrip("/")
DOCUMENT = fixed_menu(BASE_URL)
VALIDATOR = RequestValidator(os.environ["BARE_AUTH_TOKEN"]) if os.environ.get("BARE_AUTH_TOKEN") else None


@app.post("/voice/<path:_rest>")
def voice(_rest: str) -> Response:
    """Every voice URL answers with the same menu, once its signature is checked (403 otherwise)."""
    if VALIDATOR is not None:
        query = request.query_string.decode("utf-8", "replace")
        url = BASE_URL + request.path + (f"?{query}" if query else "")
        expected = VALIDATOR.compute_signature(url, request.form)
        if not hmac.compare_digest(expected, request.headers.get("X-Twilio-Signature", "")):
            abort(403)
    return Response(DOCUMENT, mimetype="text/xml")


@app.get("/healthz")
def healthz() -> Response:
    """Readiness probe for the bench."""
    return jsonify(ok=True)
