"""Call and caller records: who is calling (by keyed hash), their preferences, the path taken."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Call, CallEvent, Caller, utcnow
from models.crypto import Vault, normalize_number

# What Twilio sends as From when the caller withheld their number.
WITHHELD = {"", "anonymous", "restricted", "unknown", "private", "+266696687", "+86282452253", "+7378742833"}


def is_withheld(number: str | None) -> bool:
    """True when the caller's number is hidden or unusable for a callback."""
    return normalize_number(number or "").lower() in WITHHELD or not normalize_number(number or "").strip("+")


def find_or_create_caller(session: Session, vault: Vault, number: str | None) -> Caller | None:
    """The caller row for a number (None when withheld); the number is stored encrypted."""
    if is_withheld(number):
        return None
    assert number is not None
    digest = vault.lookup_hash(number)
    caller = session.scalar(select(Caller).where(Caller.number_hash == digest))
    if caller is None:
        caller = Caller(number_hash=digest, number_encrypted=vault.encrypt_text(normalize_number(number)))
        session.add(caller)
    caller.last_call_at = utcnow()
    return caller


def find_or_create_call(session: Session, call_sid: str, caller: Caller | None = None,
                        direction: str = "inbound") -> Call:
    """The call row for a CallSid, created on the first webhook of the call."""
    call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    if call is None:
        call = Call(call_sid=call_sid, caller=caller, direction=direction)
        session.add(call)
    elif caller is not None and call.caller_id is None:
        call.caller = caller
    return call


def caller_for_call(session: Session, call_sid: str) -> Caller | None:
    """The caller of a call, if known."""
    call = session.scalar(select(Call).where(Call.call_sid == call_sid))
    return call.caller if call else None


def record_event(session: Session, call_sid: str, node: str, received: str | None = None,
                 detail: str | None = None) -> None:
    """Append one step of the caller's path (never raw speech, only what it chose)."""
    if not call_sid:
        return
    call = find_or_create_call(session, call_sid)
    call.events.append(CallEvent(node=node, input=received, detail=detail))
