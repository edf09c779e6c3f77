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

from callflows.calls import find_or_create_call, find_or_create_caller
from models import Call, Caller, Peer
from models.crypto import Vault


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


def _set(row: object, **fields: object) -> None:
    """Set columns of ``row``; a misspelt column is an error, not a silently ignored attribute."""
    for name, value in fields.items():
        if not hasattr(type(row), name):
            raise TypeError(f"{type(row).__name__} has no column {name!r}")
        setattr(row, name, value)
