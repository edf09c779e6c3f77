"""Call and caller records: who is calling (by keyed hash), their preferences, the path taken."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Collection, TypeVar, cast

from sqlalchemy import Engine, Table, bindparam, func, insert, inspect, literal, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, joinedload

from callflows.sql import rowcount
from models import Base, Call, CallbackRequest, CallEvent, Caller, Peer, utcnow
from models.crypto import Vault, normalize_number

# What Twilio sends as From when the caller withheld their number.
WITHHELD = {"", "anonymous", "restricted", "unknown", "private", "+266696687", "+86282452253", "+7378742833"}
# Twilio's CallStatus values after which a call (or a leg the line placed) is over.
FINAL_CALL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# CallStatus values that mean the far end picked up.
ANSWERED_CALL_STATUSES = frozenset({"in-progress", "answered"})
# Twilio's CallStatus values in the order a call goes through them (every final one last): a
# status callback moves a call forward only, so a late or repeated one never re-opens it.
CALL_STATUS_STAGES = {"queued": 0, "initiated": 1, "ringing": 2, **dict.fromkeys(ANSWERED_CALL_STATUSES, 3),
                      **dict.fromkeys(FINAL_CALL_STATUSES, 4)}
# The sizes of a call event's columns (models.tables.CallEvent): what a caller keyed is cut to fit,
# since PostgreSQL refuses a longer value (or a NUL character) where SQLite would store it.
EVENT_INPUT_CHARS = 64
EVENT_DETAIL_CHARS = 255
# The largest id every supported database stores (PostgreSQL INTEGER): a forged URL may carry more.
MAX_ROW_ID = 2**31 - 1

Row = TypeVar("Row", bound=Base)


def by_id(session: Session, model: type[Row], row_id: int) -> Row | None:
    """The row of ``model`` with this id, or None (an id no database can hold finds nothing, never an error)."""
    if not 0 < row_id <= MAX_ROW_ID:
        return None
    return session.get(model, row_id)


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
    """The caller of a call, if known (one query: the call and its caller together)."""
    call = _call_with_caller(session, call_sid)
    return call.caller if call else None


def _call_with_caller(session: Session, call_sid: str) -> Call | None:
    return session.scalar(select(Call).options(joinedload(Call.caller)).where(Call.call_sid == call_sid))


# A transaction that only records the caller's path commits without waiting for the disk (below).
_NO_FLUSH_WAIT = text("SET LOCAL synchronous_commit TO OFF")


def commit_step(session: Session) -> None:
    """Commit a transaction that holds only steps of the caller's path and their preferences, without waiting for the disk.

    On PostgreSQL this one transaction does not wait for its WAL flush (``synchronous_commit``
    off, for it alone): a crash of the database server may lose the last fraction of a second
    of such steps (at most three ``wal_writer_delay``, 0.6 s by default) but never corrupts
    anything, and every durable commit after it (a claim, a callback, a voicemail) flushes it
    too. Waiting for the disk was the largest part of a menu answer (several ms per commit).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(_NO_FLUSH_WAIT)
    session.commit()


# The first webhook of a call ------------------------------------------------------------------


@dataclass(frozen=True)
class Arrival:
    """What the line knows about a call when it comes in (see :func:`call_arrived`)."""

    peer: bool  # the number is an active peer's registered phone: nothing was written
    known: bool = False  # the caller has called before
    language: str | None = None  # their remembered language, when the line still speaks it
    slow: bool = False  # their slower speech rate
    callback_language: str | None = None  # the language of the callback they are waiting for, if any


_EVENTS, _CALLS = cast(Table, CallEvent.__table__), cast(Table, Call.__table__)
_PEERS, _CALLERS = cast(Table, Peer.__table__), cast(Table, Caller.__table__)
_CALLBACKS = cast(Table, CallbackRequest.__table__)
# Who is calling, in one query that always returns one row: an active peer's phone, the caller
# (when they called before) and the language of their oldest pending callback, found by the
# indexed hashes; a LEFT JOIN on a one-row select, so a new caller still gets the peer check.
_ONE_ROW = select(literal(1).label("one")).subquery()
_ARRIVAL = select(
    select(_PEERS.c.id).where(_PEERS.c.phone_hash == bindparam("digest"), _PEERS.c.active.is_(True))
    .scalar_subquery().label("peer_id"),
    _CALLERS.c.id, _CALLERS.c.language, _CALLERS.c.slow_speech,
    select(_CALLBACKS.c.language).where(_CALLBACKS.c.caller_id == _CALLERS.c.id, _CALLBACKS.c.status == "pending")
    .order_by(_CALLBACKS.c.arrived_at).limit(1).scalar_subquery().label("callback_language"),
).select_from(_ONE_ROW.outerjoin(_CALLERS, _CALLERS.c.number_hash == bindparam("digest")))
_INSERT_EVENT_OF_CALL = insert(_EVENTS).inline()  # the new id is not needed: no RETURNING
_TOUCH_CALLER = update(_CALLERS).where(_CALLERS.c.id == bindparam("caller_id")).values(last_call_at=bindparam("now"))


def _upserts(dialect: Any) -> tuple[Any, Any]:
    """INSERT ... ON CONFLICT statements of a new caller and of the call (PostgreSQL and SQLite spell them alike)."""
    new_caller = dialect.insert(_CALLERS).values(
        number_hash=bindparam("digest"), number_encrypted=bindparam("number_encrypted"), slow_speech=False,
        created_at=bindparam("now"), last_call_at=bindparam("now"))
    # Two first calls from one number at once: the second finds the first's row.
    new_caller = new_caller.on_conflict_do_update(
        index_elements=[_CALLERS.c.number_hash], set_={"last_call_at": new_caller.excluded.last_call_at}
    ).returning(_CALLERS.c.id)
    call = dialect.insert(_CALLS).values(
        call_sid=bindparam("call_sid"), caller_id=bindparam("caller_id"), direction="inbound", status="in-progress",
        language=bindparam("language"), started_at=bindparam("now"))
    # Twilio may post /voice/incoming again for the same call (a retry), or a later webhook may
    # have created the call first: the row is kept, and given its caller and language.
    call = call.on_conflict_do_update(
        index_elements=[_CALLS.c.call_sid],
        set_={"caller_id": func.coalesce(_CALLS.c.caller_id, call.excluded.caller_id),
              "language": func.coalesce(call.excluded.language, _CALLS.c.language)},
    ).returning(_CALLS.c.id)
    return new_caller, call


_UPSERTS = {"postgresql": _upserts(postgresql), "sqlite": _upserts(sqlite)}


def call_arrived(session: Session, vault: Vault, call_sid: str, number: str | None,
                 languages: Collection[str]) -> Arrival:
    """The first webhook of a call: who is calling, and the caller, the call and its first step written.

    One query finds a peer's phone, the caller and a pending callback; then the caller's row
    (created, or its last call noted), the call's (with the caller's language when the line
    speaks it) and the ``incoming`` step, in the session's transaction: the caller commits. A
    peer's phone writes nothing (their shift call goes on elsewhere). Core statements built
    once, no unit of work: this runs on every call.
    """
    conn = session.connection()
    digest = vault.lookup_hash(number) if number else None
    row = conn.execute(_ARRIVAL, {"digest": digest}).one() if digest else None
    if row is not None and row.peer_id is not None:
        return Arrival(peer=True)
    new_caller, upsert_call = _UPSERTS[conn.dialect.name]
    now = utcnow()
    caller_id: int | None = None
    known = row is not None and row.id is not None and not is_withheld(number)
    if known:
        assert row is not None
        caller_id = row.id
        conn.execute(_TOUCH_CALLER, {"caller_id": caller_id, "now": now})
    elif digest is not None and not is_withheld(number):
        encrypted = vault.encrypt_text(normalize_number(number or ""))
        caller_id = conn.execute(new_caller, {"digest": digest, "number_encrypted": encrypted, "now": now}).scalar_one()
    language = row.language if known and row is not None and row.language in languages else None
    call_id = conn.execute(upsert_call, {"call_sid": call_sid, "caller_id": caller_id, "language": language,
                                         "now": now}).scalar_one()
    conn.execute(_INSERT_EVENT_OF_CALL, {"call_id": call_id, "at": now, "node": "incoming", "input": None,
                                         "detail": None})
    if not known or row is None:
        return Arrival(peer=False)
    return Arrival(peer=False, known=True, language=language, slow=bool(row.slow_speech),
                   callback_language=row.callback_language)


# One step of a call's path as a single INSERT ... SELECT that finds the call by its unique,
# indexed CallSid: built once, so a webhook pays neither for loading the call nor for
# building the statement.
_EVENT_FIELDS = ("at", "node", "input", "detail")
_INSERT_EVENT = insert(_EVENTS).from_select(
    ["call_id", *_EVENT_FIELDS],
    select(_CALLS.c.id, *(bindparam(name, type_=_EVENTS.c[name].type).label(name) for name in _EVENT_FIELDS))
    .where(_CALLS.c.call_sid == bindparam("call_sid"))
).execution_options(preserve_rowcount=True)  # SQLAlchemy keeps an INSERT's rowcount only when asked


def record_event(session: Session, call_sid: str, node: str, received: str | None = None,
                 detail: str | None = None) -> None:
    """Append one step of the caller's path (never raw speech, only what it chose), as every database stores it.

    One INSERT that finds the call by its CallSid: the call's earlier events are never
    loaded, so a webhook costs the same on a call's 300th step as on its first.
    """
    if not call_sid:
        return
    values = {"at": utcnow(), "node": node, "input": _storable(received, EVENT_INPUT_CHARS),
              "detail": _storable(detail, EVENT_DETAIL_CHARS)}
    call = _call_in_session(session, call_sid)
    if call is None:
        if rowcount(session.execute(_INSERT_EVENT, {"call_sid": call_sid, **values})):
            return
        call = find_or_create_call(session, call_sid)  # the first webhook of a call the line never saw
    # Setting the event's call appends to an unloaded Call.events without loading it.
    session.add(CallEvent(call=call, **values))


def record_step(engine: Engine, call_sid: str, node: str, received: str | None = None,
                detail: str | None = None) -> None:
    """Record one step of the caller's path on its own, durably: one INSERT, one round trip on a busy line.

    For a webhook that writes nothing else (a menu answer): the INSERT ... SELECT of
    :func:`record_event` runs in autocommit, so the database commits it (and waits for the
    disk, as for any durable commit) without a BEGIN or a COMMIT of its own; no session, no
    unit of work. A call the line never saw is created with its step in one transaction, as
    :func:`record_event` does.
    """
    if not call_sid:
        return
    values = {"at": utcnow(), "node": node, "input": _storable(received, EVENT_INPUT_CHARS),
              "detail": _storable(detail, EVENT_DETAIL_CHARS)}
    with engine.connect() as conn:
        autocommit = conn.execution_options(isolation_level="AUTOCOMMIT")
        found = rowcount(autocommit.execute(_INSERT_EVENT, {"call_sid": call_sid, **values}))
        autocommit.commit()  # nothing left to send (the INSERT committed itself); ends SQLAlchemy's transaction
    if found:
        return
    with Session(engine, expire_on_commit=False) as session:  # the first webhook of a call the line never saw
        session.add(CallEvent(call=find_or_create_call(session, call_sid), **values))
        session.commit()


def _call_in_session(session: Session, call_sid: str) -> Call | None:
    """The call with this CallSid when the session already holds it (new or loaded), without any SQL."""
    for obj in (*session.new, *session.identity_map.values()):
        if isinstance(obj, Call) and inspect(obj).dict.get("call_sid") == call_sid:
            return obj
    return None


def _storable(text: str | None, size: int) -> str | None:
    """``text`` without control characters (PostgreSQL refuses NUL) and cut to ``size`` characters."""
    if text is None:
        return None
    return "".join(ch for ch in text if ch.isprintable())[:size]


def call_status_changed(session: Session, call_sid: str, status: str | None, duration_s: int | None,
                        now: datetime) -> Call:
    """The number's status callback: the call's status moves forward only; a final one ends the call for good.

    Twilio may deliver callbacks late, twice or out of order: an earlier stage (a late
    ``in-progress``) or another final status after the call ended changes nothing, and a
    status Twilio does not document is ignored. The outcome is "hung_up" unless known.
    """
    call = find_or_create_call(session, call_sid)
    if status in CALL_STATUS_STAGES and (call.status not in CALL_STATUS_STAGES
                                         or CALL_STATUS_STAGES[status] > CALL_STATUS_STAGES[call.status]):
        call.status = status
    if call.status in FINAL_CALL_STATUSES:
        call.ended_at = call.ended_at or now
        if call.duration_s is None:
            call.duration_s = duration_s
        call.outcome = call.outcome or "hung_up"
    session.commit()
    return call


_SET_CALL_LANGUAGE = (update(_CALLS).where(_CALLS.c.call_sid == bindparam("sid"))
                      .values(language=bindparam("chosen")).returning(_CALLS.c.id, _CALLS.c.caller_id))
_SET_CALLER_LANGUAGE = (update(_CALLERS).where(_CALLERS.c.id == bindparam("caller")).values(language=bindparam("chosen"))
                        .returning(_CALLERS.c.slow_speech))


def remember_language(session: Session, call_sid: str, language: str, received: str) -> bool:
    """The caller chose a language: remembered for this call and their next ones; returns their slow-pace choice.

    Three Core statements found by the CallSid and the caller's id (the call, the caller, the
    step) and one commit; no row is loaded into the session.
    """
    conn = session.connection()
    call = conn.execute(_SET_CALL_LANGUAGE, {"sid": call_sid, "chosen": language}).first()
    if call is None:  # a call the line never saw (its first webhook was lost)
        find_or_create_call(session, call_sid).language = language
        record_event(session, call_sid, "language", received, language)
        commit_step(session)
        return False
    slow = False
    if call.caller_id is not None:
        slow = bool(conn.execute(_SET_CALLER_LANGUAGE, {"caller": call.caller_id, "chosen": language}).scalar())
    conn.execute(_INSERT_EVENT_OF_CALL, {"call_id": call.id, "at": utcnow(), "node": "language",
                                         "input": _storable(received, EVENT_INPUT_CHARS), "detail": language})
    session.commit()
    return slow


def go_on_undecided(session: Session, call_sid: str, language: str, received: str) -> bool:
    """Nobody chose a language at the first question: the call goes on in ``language``, and nothing is saved.

    Neither the caller nor the call gets a language, so the next call asks again and a
    voicemail is not taken for ``language`` speech. Returns the caller's slow-pace choice.
    """
    caller = caller_for_call(session, call_sid)
    record_event(session, call_sid, "language", received, f"{language}, not chosen")
    commit_step(session)
    return bool(caller and caller.slow_speech)


def set_pace(session: Session, call_sid: str, slow: bool) -> None:
    """The caller chose the slower (or the usual) speech rate, remembered for their next calls."""
    caller = caller_for_call(session, call_sid)
    if caller is not None:
        caller.slow_speech = slow
    commit_step(session)
