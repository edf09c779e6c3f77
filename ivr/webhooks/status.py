"""The number's own callbacks: the call status callback, and the fallback URL when everything else fails."""
from __future__ import annotations

from flask import Response, request

from callflows import line
from callflows.calls import FINAL_CALL_STATUSES, call_status_changed
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import empty, to_response
from ivr.webhooks.blueprints import voice as bp
from ivr.webhooks.context import int_param
from ivr.webhooks.failures import Audience, crisis_fallback, heard_by
from models import utcnow


@bp.post("/status")
@heard_by(Audience.NOBODY)
def status() -> Response:
    """Call status callback: the call ended (or changed state); record it."""
    form = request.form
    call_status_changed(get_session(), form.get("CallSid", ""), form.get("CallStatus"),
                        int_param("CallDuration", None, form=True), utcnow())
    if form.get("CallStatus") in FINAL_CALL_STATUSES:  # hung up before the hold queue: stop ringing for them
        line.call_ended(get_session(), services(), form.get("CallSid", ""), utcnow())
    return to_response(empty())


@bp.post("/fallback")
def fallback() -> Response:
    """Twilio's fallback URL: useful TwiML with no database and no Redis (an apology, then the crisis line)."""
    return to_response(crisis_fallback())
