"""The blueprints of Twilio's webhooks, shared by the handler modules that add routes to them.

Blueprint and endpoint names are a contract: the rules build Twilio's URLs from them
(``svc.public_url("routing.leg_whisper", leg_id=...)``), so one blueprint serves several
small modules (``voice``: menus, stories, voicemail, status; ``routing``: hold and peer legs;
``callbacks``: the request and the attempt legs). Every one checks Twilio's signature before
anything else, then answers a request for the crisis line at once (:mod:`ivr.webhooks.crisis`),
and answers any failure through :func:`ivr.webhooks.failures.answer_error`.
"""
from __future__ import annotations

from flask import Blueprint

from ivr.signature import require_twilio_signature
from ivr.webhooks import crisis, failures

voice = Blueprint("voice", __name__, url_prefix="/voice")
routing = Blueprint("routing", __name__, url_prefix="/peer")
callbacks = Blueprint("callbacks", __name__, url_prefix="/callbacks")
peer_phone = Blueprint("peer_phone", __name__, url_prefix="/peer/phone")

TWILIO = (voice, routing, callbacks, peer_phone)

for _blueprint in TWILIO:
    _blueprint.before_request(require_twilio_signature)
    _blueprint.before_request(crisis.crisis_first)  # before any handler touches the database or Redis
    _blueprint.register_error_handler(Exception, failures.answer_error)
