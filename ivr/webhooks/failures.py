"""One error path for every Twilio webhook: whatever fails, Twilio gets TwiML that keeps the caller safe.

Never HTML, never a 500, never a silent hang-up for a caller. What the answer is depends on who
listens to the route (marked with :func:`heard_by`; a caller on the line's menus by default):

- ``CALLER``: the error line, then the main menu with ``err=1``. A second failure in a row
  (``err`` is still set) hands the caller to the crisis line (:func:`crisis_fallback`), so an
  error never loops.
- ``ON_HOLD``: a caller in the hold queue, where only a wait document's verbs work: the error
  line, then the wait document again (same place in line, ``err=1``); a second failure leaves
  the queue, and the Enqueue action offers a callback or a message at once.
- ``LEG``: a call the line placed (a peer's ringing leg, a callback's legs) or a peer's own
  shift call: a short apology, then the call ends; its status callback frees the peer or
  schedules the retry as for any ended call.
- ``NOBODY``: a status callback: an empty ``<Response/>``.

An unknown path (404) or a GET (405) under a webhook prefix is answered as a caller's error too:
Twilio always POSTs to these URLs, so either means a misconfigured number or a stale URL, and
the person on that call still deserves the menu or the crisis line rather than Twilio's
"application error". A bad signature stays 403, and a body larger than the app accepts 413
(refused unread): security answers, not ones for callers.
"""
from __future__ import annotations

import logging
from enum import Enum
from typing import Callable, Iterable, TypeVar

from flask import Blueprint, Flask, Response, current_app, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.exceptions import Forbidden, HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge

from ivr.db import get_session
from ivr.services import services
from ivr.signature import has_valid_signature, too_large
from ivr.twiml import Speaker, empty, fallback as fallback_twiml, hang_up, to_response
from ivr.webhooks.context import caller_flow, current_ctx, int_param

log = logging.getLogger(__name__)

AUDIENCES = "peerline.webhook_audiences"  # app.extensions key: endpoint -> Audience
MAX_ERRORS = 9  # ``err`` counts failures in a row; any value past 1 means the same


class Audience(Enum):
    """Who hears a webhook's answer, which decides what its error answer is."""

    CALLER = "caller"
    ON_HOLD = "on_hold"
    LEG = "leg"
    NOBODY = "nobody"


View = TypeVar("View", bound=Callable[..., ResponseReturnValue])
_marked: dict[Callable[..., object], Audience] = {}


def heard_by(audience: Audience) -> Callable[[View], View]:
    """Mark a webhook view with who listens to it (views not marked are heard by a caller on the menus)."""
    def mark(view: View) -> View:
        _marked[view] = audience
        return view
    return mark


def init_app(app: Flask, blueprints: Iterable[Blueprint]) -> None:
    """Record who listens to each webhook route, and answer 404 and 405 under the webhook prefixes with TwiML.

    Call after the blueprints are registered. The classification is taken once, by endpoint,
    so it holds whatever happens to a view function later.
    """
    webhooks = tuple(blueprints)
    names = {bp.name for bp in webhooks}
    app.extensions[AUDIENCES] = {endpoint: _marked.get(view, Audience.CALLER)
                                 for endpoint, view in app.view_functions.items()
                                 if endpoint.partition(".")[0] in names}
    prefixes = tuple(str(bp.url_prefix) for bp in webhooks)

    def unrouted(exc: HTTPException) -> ResponseReturnValue:
        """No route matched, so no blueprint's handler runs: answer for the webhook prefixes here."""
        if not any(request.path == p or request.path.startswith(p + "/") for p in prefixes):
            return exc  # the staff pages and the rest keep Flask's own answer
        if too_large():
            return RequestEntityTooLarge()
        if not has_valid_signature():
            return Forbidden()
        log.warning("webhook %s %s answered as an error: %s", request.method, request.path, exc.code)
        return _safe_answer(Audience.CALLER)

    app.register_error_handler(NotFound, unrouted)
    app.register_error_handler(MethodNotAllowed, unrouted)


def audience_of(endpoint: str | None) -> Audience:
    """Who listens to ``endpoint`` in this app (a caller when it is not a known webhook)."""
    known: dict[str, Audience] = current_app.extensions.get(AUDIENCES, {})
    return known.get(endpoint or "", Audience.CALLER)


def answer_error(exc: Exception) -> ResponseReturnValue:
    """The error handler of every webhook blueprint: log, roll back, answer TwiML for whoever listens."""
    if isinstance(exc, (Forbidden, RequestEntityTooLarge)):
        return exc  # a bad signature or an oversized body: a security answer, not one for callers
    if isinstance(exc, HTTPException):
        log.warning("webhook %s answered as an error: %s %s", request.path, exc.code, exc.description)
    else:
        log.exception("webhook failed: %s", request.path)
    try:
        get_session().rollback()
    except SQLAlchemyError:
        log.warning("rollback failed after a webhook error", exc_info=True)
    return _safe_answer(audience_of(request.endpoint))


def crisis_fallback() -> VoiceResponse:
    """Apologise in each language and dial the crisis line; needs no database and no Redis."""
    svc = services()
    lines = [(svc.flows[lang], svc.flows[lang].text("fallback")) for lang in ("en", "es") if lang in svc.flows]
    return fallback_twiml(lines, svc.settings.crisis_number)


def _safe_answer(audience: Audience) -> Response:
    try:
        twiml = _answer_for(audience)
    except Exception:  # noqa: BLE001 - whatever broke the route may break its answer too: never a 500
        log.exception("the error answer failed too: %s", request.path)
        # Built only from the flows and settings checked when the app started.
        if audience is Audience.NOBODY:
            twiml = empty()
        elif audience is Audience.LEG:
            twiml = hang_up()
        else:
            twiml = crisis_fallback()
    return to_response(twiml)


def _answer_for(audience: Audience) -> VoiceResponse:
    if audience is Audience.NOBODY:
        return empty()
    if audience is Audience.LEG:
        speaker = Speaker(caller_flow(request.args.get("lang")))
        return speaker.say_then_hangup([speaker.text("error_hangup")])
    ctx = current_ctx()
    errors = int_param("err", 0, high=MAX_ERRORS)
    sorry = ctx.flow.text("error")
    if audience is Audience.ON_HOLD:
        req_id = (request.view_args or {}).get("req_id")
        if errors >= 1 or req_id is None:
            return ctx.speaker.leave_queue([sorry])
        return ctx.speaker.say_then_redirect([sorry], ctx.url("routing.hold_wait", req_id=req_id, err=errors + 1))
    if errors >= 1 or request.endpoint == "voice.fallback":
        return crisis_fallback()  # do not loop: a second failure in a row goes to the crisis line
    return ctx.speaker.say_then_redirect([sorry], ctx.url("voice.menu", node=ctx.flow.start, err=errors + 1))
