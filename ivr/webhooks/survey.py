"""The optional caller survey after a peer call: one question at a time, a key from 1 to 5.

The caller reaches it from the end of their conference with a peer (the Dial action in
:mod:`ivr.webhooks.hold`, by URL) when ``CALLER_SURVEY`` is on. The rule is
:mod:`callflows.survey`. Key 9 and words of danger go to the crisis line before any of this
runs (:mod:`ivr.webhooks.crisis`); silence or hanging up simply ends the call.
"""
from __future__ import annotations

from flask import Response, request

from callflows import routing, survey
from ivr.db import get_session
from ivr.services import services
from ivr.twiml import to_response
from ivr.webhooks.blueprints import routing as bp
from ivr.webhooks.context import Ctx, current_ctx, int_param
from models import utcnow
from models.tables import PeerRequest


def _request(req_id: int) -> PeerRequest | None:
    req = routing.request_for_call(get_session(), req_id, request.form.get("CallSid", ""))
    return req if survey.may_ask(req) else None


def _goodbye(ctx: Ctx, *first: str) -> Response:
    return to_response(ctx.speaker.say_then_hangup([*first, ctx.flow.text("goodbye")]))


def _ask(ctx: Ctx, req: PeerRequest, question: str, preface: list[str], attempt: int = 0) -> Response:
    lines = [*preface, ctx.flow.text(f"survey_{question}")]
    return to_response(ctx.speaker.survey_question(
        lines, ctx.url("routing.survey_answer", req_id=req.id, question=question, attempt=attempt),
        [ctx.flow.text("goodbye")]))


@bp.post("/survey/<int:req_id>/<question>")
def survey_start(req_id: int, question: str) -> Response:
    """The first question, after the plain statement that the survey is optional."""
    ctx = current_ctx()
    req = _request(req_id)
    if req is None or question not in survey.QUESTIONS:
        return _goodbye(ctx)
    return _ask(ctx, req, question, [ctx.flow.text("survey_intro")] if question == survey.QUESTIONS[0] else [])


@bp.post("/survey/<int:req_id>/<question>/answer")
def survey_answer(req_id: int, question: str) -> Response:
    """A key: 1 to 5 is stored and the next question follows; * repeats; another key asks once more."""
    ctx = current_ctx()
    req = _request(req_id)
    if req is None or question not in survey.QUESTIONS:
        return _goodbye(ctx)
    digits = request.form.get("Digits", "")
    attempt = int_param("attempt", 0, low=0)
    if digits == "*":
        return _ask(ctx, req, question, [])
    if not survey.record_answer(get_session(), services().vault, req, question, digits, utcnow()):
        if attempt >= 1:  # a second wrong key: no nagging, the survey is over
            return _goodbye(ctx)
        return _ask(ctx, req, question, [ctx.flow.text("survey_invalid")], attempt=attempt + 1)
    following = survey.next_question(question)
    if following is None:
        return _goodbye(ctx, ctx.flow.text("survey_thanks"))
    return _ask(ctx, req, following, [])
