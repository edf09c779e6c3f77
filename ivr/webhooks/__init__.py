"""Twilio's webhooks: small handler modules that parse a request, call a rule, and answer TwiML.

Handler modules (each adds routes to a blueprint of :mod:`~ivr.webhooks.blueprints`):

- :mod:`~ivr.webhooks.menus`: the entry point, the language question, menus, the crisis line;
- :mod:`~ivr.webhooks.stories`: peer stories and their keys;
- :mod:`~ivr.webhooks.voicemail`: consent, recording and the recording's callback;
- :mod:`~ivr.webhooks.hold`: asking for a peer, the hold queue, the bridge to the peer;
- :mod:`~ivr.webhooks.peer_legs`: a peer's ringing leg (whisper, accept, status);
- :mod:`~ivr.webhooks.callback_request`: the callback request, a returning caller's pending callback;
- :mod:`~ivr.webhooks.callback_legs`: the peer's and the caller's legs of a callback attempt;
- :mod:`~ivr.webhooks.peer_phone`: peers run their shift by phone;
- :mod:`~ivr.webhooks.status`: the number's status callback and fallback URL;
- :mod:`~ivr.webhooks.survey`: the optional caller survey after a peer call (``CALLER_SURVEY``);
- :mod:`~ivr.webhooks.media`: signed story audio for <Play> (GET, not TwiML).

Shared helpers, the only project modules a handler module imports besides ``ivr.twiml``,
``ivr.db``, ``ivr.services``, ``ivr.signature``, the rules (``callflows``) and ``models``:

- :mod:`~ivr.webhooks.context`: the request context (CallSid, flow, pace), URLs and numbers;
- :mod:`~ivr.webhooks.actions`: the one registry of flow actions and hand-overs between modules;
- :mod:`~ivr.webhooks.failures`: the one TwiML error path for every webhook;
- :mod:`~ivr.webhooks.blueprints`: the shared blueprints (names are a contract);
- :mod:`~ivr.webhooks.story_audio`: signed, expiring story audio URLs.

Handler modules never import each other: a module hands the call to another through
:mod:`~ivr.webhooks.actions`. ``create_app`` imports every module and registers the blueprints.
"""
