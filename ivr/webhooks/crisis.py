"""Crisis first, with nothing in the way: 9 (or danger said aloud) at any caller's prompt dials
the crisis line before the database or Redis is touched; the event is recorded afterwards.

Every Twilio blueprint runs :func:`crisis_first` right after the signature check. On a route a
caller hears (menus, the language question, stories playing or paused, number entry, callback
prompts, hold, a peer's PIN and shift menu), the keys ``9`` or ``9#`` and spoken danger (the
voicemail triage's high-risk phrases, and the words for the crisis line) answer at once with a
``<Dial>`` to ``CRISIS_NUMBER`` built only from the query string and the settings. A caller
on hold cannot be dialled from the queue's wait document (Twilio allows no ``<Dial>`` there),
so the line moves that call out of the queue to the crisis dial through Twilio's REST API,
which needs neither the database nor Redis either.

Recording that it happened is best effort, after the answer has gone
(:func:`record_afterwards`): a locked database delays nobody.
"""
from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from flask import after_this_request, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy import Connection
from twilio.twiml.voice_response import VoiceResponse
from werkzeug.wrappers import Response as WerkzeugResponse

from callflows.calls import record_event
from callflows.engine import means_crisis
from callflows.errors import TwilioGatewayError
from ivr.services import services
from ivr.twiml import empty, to_response
from ivr.webhooks.context import Ctx, current_ctx
from ivr.webhooks.failures import Audience, audience_of
from transcription.triage import triage

log = logging.getLogger(__name__)

CRISIS_KEYS = ("9", "9#")  # 9 alone, or 9 and the pound key that ends a number or a PIN
# A peer's own shift call: their PIN and their shift menu are prompts like any other. The
# peer-number prompt is not: there 9 is a digit like any other, so peers 9, 19 or 90 can sign in.
PEER_PROMPTS = ("peer_phone.pin", "peer_phone.choice")
BEST_EFFORT_WAIT_MS = 250


def heard_danger(speech: str) -> bool:
    """True when words a caller said carry a high risk (the voicemail triage's phrases, English and Spanish)."""
    # Negation is ignored here: a caller who says "i don't want to die" still gets the crisis line.
    return triage(speech).level_ignoring_negation == "high"


def asks_for_crisis() -> bool:
    """True when this request's keys or words ask for the crisis line."""
    if (request.form.get("Digits") or "").strip() in CRISIS_KEYS:
        return True
    speech = request.form.get("SpeechResult") or ""
    return bool(speech.strip()) and means_crisis(speech, heard_danger)


def crisis_dial(ctx: Ctx) -> VoiceResponse:
    """Say one line, then connect the caller to the crisis line; back to the menu when that call ends."""
    return ctx.speaker.dial([ctx.flow.text("crisis")], services().settings.crisis_number, ctx.url("voice.crisis_done"))


@contextmanager
def brief_waits(conn: Connection) -> Iterator[None]:
    """Within the block, the connection's lock and statement waits last BEST_EFFORT_WAIT_MS at most."""
    if conn.dialect.name == "sqlite":
        previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {BEST_EFFORT_WAIT_MS}")
        try:
            yield
        finally:
            # The connection is still ours here (the caller holds it open), so the pool never
            # gets back a connection that gives up this soon.
            try:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")
            except SQLAlchemyError:
                conn.invalidate()
        return
    if conn.dialect.name == "postgresql":  # SET LOCAL ends with the transaction
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = {BEST_EFFORT_WAIT_MS}")
        conn.exec_driver_sql(f"SET LOCAL statement_timeout = {BEST_EFFORT_WAIT_MS}")
    yield


def record_afterwards(call_sid: str, node: str, received: str) -> None:
    """Record a step of the call once the answer has gone back to Twilio (best effort, never in the caller's way)."""
    svc = services()

    def record() -> None:
        try:
            # One connection held for the whole record, the session joined to its transaction:
            # the short waits are set, used and undone on the same connection (a session's own
            # commit would hand its connection back to the pool before the undo).
            with svc.engine.connect() as conn, brief_waits(conn):
                # A short wait only: on a locked database this would otherwise hold the web
                # worker (and the next caller it serves) for the whole statement timeout.
                with svc.sessions(bind=conn) as session:
                    record_event(session, call_sid, node, received)
                    session.flush()
                conn.commit()
        except SQLAlchemyError:
            log.warning("could not record %s for call %s (the database is unavailable)", node, call_sid, exc_info=True)

    @after_this_request
    def when_sent(response: WerkzeugResponse) -> WerkzeugResponse:
        response.call_on_close(record)
        return response


def crisis_first() -> ResponseReturnValue | None:
    """Before any handler: answer a request for the crisis line at once (None lets the handler run)."""
    audience = audience_of(request.endpoint)
    if audience not in (Audience.CALLER, Audience.ON_HOLD) and request.endpoint not in PEER_PROMPTS:
        return None
    if not asks_for_crisis():
        return None
    ctx = current_ctx()
    received = "9" if request.form.get("Digits") else "speech"
    if audience is Audience.ON_HOLD:
        try:
            services().twilio.update_call(ctx.call_sid, url=ctx.url("voice.action", name="crisis"), method="POST")
        except TwilioGatewayError:
            log.exception("could not move call %s from the queue to the crisis line; the hold handler will", ctx.call_sid)
            return None  # the handler leaves the queue for the crisis line the usual way
        record_afterwards(ctx.call_sid, "crisis", received)
        return to_response(empty())  # Twilio is already fetching the crisis dial for this call
    record_afterwards(ctx.call_sid, "crisis", received)
    return to_response(crisis_dial(ctx))
