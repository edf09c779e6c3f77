"""Rows for tests, made the way the line makes them: peers, callers and calls.

Each factory takes the test's session (and the vault where a phone number is stored), stores
the number only through the same calls production uses (:meth:`models.Peer.set_phone`,
:func:`callflows.calls.find_or_create_caller`), commits, and returns the row. Other columns
can be set by keyword. Tests never build these rows by hand.
"""
from __future__ import annotations

import uuid
from datetime import datetime
from typing import Iterable

from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from callflows.calls import find_or_create_call, find_or_create_caller, record_event
from models import Call, CallbackRequest, Caller, Peer, PeerStatusChange, SurveyAnswer, Voicemail
from models.crypto import Vault
from models.tables import PeerRequest, RingLeg


def make_peer(session: Session, vault: Vault, *, phone: str, display_name: str = "Sam",
              languages: Iterable[str] = ("en",), tags: Iterable[str] = (), status: str = "available",
              pin: str | None = None, last_call_ended_at: datetime | None = None, **fields: object) -> Peer:
    """A peer (available by default) whose phone is stored encrypted with its lookup hash."""
    peer = Peer(display_name=display_name, languages=list(languages), tags=list(tags), status=status,
                pin_hash=generate_password_hash(pin) if pin is not None else None,
                last_call_ended_at=last_call_ended_at, **fields)
    peer.set_phone(vault, phone)
    session.add(peer)
    session.commit()
    return peer


def make_caller(session: Session, vault: Vault, number: str, *, language: str | None = None,
                **fields: object) -> Caller:
    """The caller of ``number`` as the incoming-call webhook records it (never a withheld number)."""
    caller = find_or_create_caller(session, vault, number)
    assert caller is not None, f"{number!r} is a withheld number: a call from it has no caller row"
    _set(caller, language=language, **fields)
    session.commit()
    return caller


def make_call(session: Session, call_sid: str | None = None, *, caller: Caller | None = None,
              direction: str = "inbound", **fields: object) -> Call:
    """A call row as the first webhook of a call makes it; ``fields`` set status, language and so on."""
    call = find_or_create_call(session, call_sid or "CA" + uuid.uuid4().hex, caller, direction)
    _set(call, **fields)
    session.commit()
    return call


def make_request(session: Session, call: Call, *, arrived_at: datetime, status: str = "waiting",
                 peer: Peer | None = None, connected_at: datetime | None = None, ended_at: datetime | None = None,
                 legs: Iterable[str] = (), language: str = "en") -> PeerRequest:
    """A caller's request for a peer, with ringing legs of ``peer`` in the given final statuses."""
    req = PeerRequest(call_sid=call.call_sid, call_id=call.id, language=language, status=status,
                      peer_id=peer.id if peer is not None and connected_at is not None else None,
                      arrived_at=arrived_at, connected_at=connected_at, ended_at=ended_at)
    session.add(req)
    session.flush()
    for leg_status in legs:
        assert peer is not None, "a ringing leg rings a peer"
        session.add(RingLeg(request_id=req.id, peer_id=peer.id, status=leg_status, created_at=arrived_at,
                            ended_at=ended_at))
    session.commit()
    return req


def make_event(session: Session, call: Call, node: str, received: str | None = None, *, at: datetime) -> None:
    """One step of a call's path, recorded as the webhooks record it, at ``at``."""
    record_event(session, call.call_sid, node, received)
    session.flush()
    call.events[-1].at = at
    session.commit()


def make_callback(session: Session, vault: Vault, *, created_at: datetime, status: str = "pending",
                  number: str = "+15555550177", **fields: object) -> CallbackRequest:
    """A callback request (the number encrypted) in ``status``."""
    cb = CallbackRequest(number_encrypted=vault.encrypt_text(number), status=status, created_at=created_at,
                         arrived_at=created_at, **fields)
    session.add(cb)
    session.commit()
    return cb


def make_voicemail(session: Session, *, created_at: datetime, risk_level: str | None = None,
                   reviewed_at: datetime | None = None, **fields: object) -> Voicemail:
    """A voicemail row (no audio) with its risk level and review time."""
    vm = Voicemail(recording_sid="RE" + uuid.uuid4().hex, recording_url="https://api.twilio.test/rec",
                   created_at=created_at, risk_level=risk_level, reviewed_at=reviewed_at,
                   status="transcribed" if risk_level else "pending", **fields)
    session.add(vm)
    session.commit()
    return vm


def make_status_history(session: Session, peer: Peer, changes: Iterable[tuple[datetime, str]]) -> None:
    """A peer's status changes as the line keeps them (callflows.peers.note_status)."""
    session.add_all(PeerStatusChange(peer_id=peer.id, status=status, at=at) for at, status in changes)
    session.commit()


def make_survey_answer(session: Session, *, at: datetime, question: str, answer: int,
                       respondent: str = "S-0000000000", language: str = "en") -> SurveyAnswer:
    """One stored survey answer."""
    row = SurveyAnswer(respondent=respondent, response="R-" + uuid.uuid4().hex[:10], question=question, answer=answer,
                       language=language, at=at)
    session.add(row)
    session.commit()
    return row


def _set(row: object, **fields: object) -> None:
    """Set columns of ``row``; a misspelt column is an error, not a silently ignored attribute."""
    for name, value in fields.items():
        if not hasattr(type(row), name):
            raise TypeError(f"{type(row).__name__} has no column {name!r}")
        setattr(row, name, value)
