"""The optional caller survey after a peer call: one or two keypad questions, stored by pseudonym.

A caller hears it only when the line asks (``CALLER_SURVEY``), only after a conversation with
a peer that the peer ended (the caller is still on the line), and is told first that it is
optional. Answers are kept under pseudonyms (keyed hashes), never the caller's or the call's
id: ``respondent`` links one caller's answers over time, ``response`` makes a repeated key
press replace the answer instead of counting twice.
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Call, SurveyAnswer
from models.crypto import Vault
from models.tables import PeerRequest

QUESTIONS = ("helped", "again")  # "Did this call help?", "Would you call again?"
ANSWERS = frozenset("12345")


def may_ask(req: PeerRequest | None) -> bool:
    """True when the caller of ``req`` talked with a peer (the only calls the survey is about)."""
    return req is not None and req.connected_at is not None


def next_question(question: str) -> str | None:
    """The question after ``question`` (None after the last)."""
    index = QUESTIONS.index(question)
    return QUESTIONS[index + 1] if index + 1 < len(QUESTIONS) else None


def record_answer(session: Session, vault: Vault, req: PeerRequest, question: str, digits: str,
                  now: datetime) -> bool:
    """Store one keypad answer (1 to 5) by pseudonym; False for anything else (nothing is stored)."""
    if question not in QUESTIONS or digits not in ANSWERS or not may_ask(req):
        return False
    call = session.get(Call, req.call_id) if req.call_id is not None else None
    who = f"caller:{call.caller_id}" if call is not None and call.caller_id is not None else f"call:{req.call_sid}"
    response = vault.pseudonym("response", req.id)
    row = session.scalar(select(SurveyAnswer).where(SurveyAnswer.response == response,
                                                    SurveyAnswer.question == question))
    if row is None:
        row = SurveyAnswer(respondent=vault.pseudonym("respondent", who), response=response, question=question,
                           language=req.language)
        session.add(row)
    row.answer = int(digits)
    row.at = now
    session.commit()
    return True
