"""The one line, in arrival order, and the events that free a peer.

Callers waiting for a peer and callbacks that are due stand in one line ordered by arrival
time (a callback keeps the caller's first arrival). Whenever a peer may have become free
(a call or a ring ended, a wrap-up passed, a peer went available by phone or on the staff
page, a caller left), :func:`dispatch` offers the free peers to that line. Every such event
is a function here, so web handlers and jobs cannot forget the offer.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import CompoundSelect, Insert, Update, and_, bindparam, case, func, insert, null, select, union_all, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from callflows import callbacks, escalation, rooms, routing
from callflows.calls import ANSWERED_CALL_STATUSES, FINAL_CALL_STATUSES
from callflows.errors import SchedulingError
from callflows.peers import (FREE_PEERS, PEERS, SELF_STATUSES, STATUS_CHANGES, WRAP_UP_OVER, anyone_available, free_peer,
                             has_live_call, note_status, note_statuses, wrap_up_due)
from callflows.sql import changed_by_core, core
from callflows.services import Services
from callflows.times import aware
from models import Peer
from models.tables import CallbackAttempt, PeerRequest, RingLeg

log = logging.getLogger(__name__)

# A peer who goes available by phone is still on that call: offer them once they hung up.
PHONE_SIGN_ON_DELAY = timedelta(seconds=15)


# Who is free to be rung and (on each of their rows) whether any caller waits: one round trip
# decides what dispatch reads next. Plain Core, compiled once: dispatch runs whenever a peer may
# have come free, and on every hold poll.
_ANYONE_WAITING = select(PeerRequest.__table__.c.id).where(PeerRequest.__table__.c.status == "waiting").exists()
_GATE = FREE_PEERS.add_columns(_ANYONE_WAITING.label("waiting"))


@functools.cache
def _gate_and_first_page() -> CompoundSelect:
    """:data:`_GATE` and, when someone is free and nobody waits, the first page of callbacks and the hours.

    One round trip for what dispatch reads first on its usual path (a peer came free, no caller
    on hold): a UNION ALL of the free peers' rows (their ``kind`` NULL) and the rows of
    :func:`callflows.callbacks.due_page_with_hours` (the callback's ``id`` named ``callback_id``
    here, beside the peer's), each with the other's columns NULL. The page's part is behind a
    test PostgreSQL makes once before reading anything (a one-time filter), so on a busy line
    (nobody free) or with callers on hold (every hold poll) no callback is read here.
    """
    page = callbacks.due_page_with_hours(False).subquery("first_page")
    gate = list(_GATE.selected_columns)
    return union_all(
        _GATE.add_columns(*(sql_cast(null(), column.type).label("callback_id" if column.name == "id" else column.name)
                            for column in page.c)),
        select(*(sql_cast(null(), column.type) for column in gate), *page.c)
        .where(FREE_PEERS.exists(), ~_ANYONE_WAITING),
    )


def dispatch(session: Session, svc: Services, now: datetime, held: callbacks.Held | None = None) -> int:
    """Offer free peers to waiting callers and due callbacks, in one order by arrival; returns calls placed.

    ``held``: the peer this transaction has just released, uncommitted (the wrap-up's end).
    """
    read = core(session).execute(_gate_and_first_page(), {"now": now, "limit": callbacks.DUE_PAGE}).all()
    gate = [row for row in read if row.kind is None]
    if not gate:
        # Nothing to offer (the usual case on a busy line, checked on every hold poll): never
        # read the whole line of waiting callers only to stop at the first of them.
        return 0
    if not gate[0].waiting:
        # Nobody waiting: the callbacks get the free peers, the first page and the hours as just read.
        first = callbacks.first_page_of([row for row in read if row.kind is not None], svc.settings.zone,
                                        start=len(_GATE.selected_columns))
        return callbacks.offer_due(session, svc, now, free=[free_peer(row) for row in gate], held=held, first=first)
    rung = 0
    waiting = session.scalars(
        select(PeerRequest).where(PeerRequest.status == "waiting").order_by(PeerRequest.arrived_at, PeerRequest.id)
    ).all()
    for req in waiting:
        if not anyone_available(session):
            break
        # Callbacks that arrived before this caller go first: a callback keeps its place, never jumps it.
        rung += callbacks.offer_due(session, svc, now, arrived_before=aware(req.arrived_at), held=held)
        rung += routing.ring(session, svc, req, now, exclude=routing.recently_missed(session, req.id, now))
    return rung + callbacks.offer_due(session, svc, now, held=held)


# Events that free a peer ------------------------------------------------------------------


def ring_leg_ended(session: Session, svc: Services, leg: RingLeg, now: datetime) -> None:
    """A peer's ringing or connected leg reached a final status."""
    in_call = leg.status == "accepted"
    if in_call and escalation.peer_was_in_room(session, leg):
        # Hung up in the in-call menu (their Dial's action came with *): the conversation is over for them,
        # not a line that dropped before the room.
        peer_left_room(session, svc, leg, now)
        dispatch(session, svc, now)
        return
    routing.leg_ended(session, svc, leg, now)
    if in_call:  # the peer's side of a conversation: never leave the caller alone in the room
        req = session.get(PeerRequest, leg.request_id)
        # "waiting": the peer dropped before the room and the caller is already back in line, told so.
        if req is not None and req.status != "waiting":
            escalation.peer_leg_over(session, svc, req, now)
    dispatch(session, svc, now)


def peer_in_room(session: Session, svc: Services, leg: RingLeg, now: datetime) -> None:
    """The peer's side of the room ended (their <Dial> action): wrap-up."""
    routing.peer_in_room(session, svc, leg, now)


def peer_left_room(session: Session, svc: Services, leg: RingLeg, now: datetime) -> None:
    """The peer hung up in the room (their <Dial> action): wrap-up, and the caller stays only with a counselor."""
    if leg.status != "accepted":
        return
    req = session.get(PeerRequest, leg.request_id)
    routing.peer_in_room(session, svc, leg, now)
    if req is not None:
        escalation.peer_leg_over(session, svc, req, now)


def ring_leg_status(session: Session, svc: Services, leg: RingLeg, call_status: str, now: datetime) -> None:
    """Status callback of a peer's ringing leg: picked up (the whisper plays), or over."""
    if call_status in ANSWERED_CALL_STATUSES:
        routing.leg_answered(session, leg)
    elif call_status in FINAL_CALL_STATUSES:
        ring_leg_ended(session, svc, leg, now)


def caller_left(session: Session, svc: Services, req: PeerRequest, status: str, now: datetime) -> None:
    """The caller left the wait (hung up, or chose a callback, a message or the crisis line)."""
    if routing.caller_left(session, svc, req, status, now):
        dispatch(session, svc, now)


def left_queue(session: Session, svc: Services, req: PeerRequest, result: str, back: int, now: datetime) -> bool:
    """The hold queue's word that the caller left it (``QueueResult``); True when nothing is left to tell them.

    ``back`` counts the times the caller was put back in line when this queue began.
    """
    if result == "hangup":
        caller_left(session, svc, req, "abandoned", now)
        return True
    if result != "redirected" or req.status not in routing.OPEN_REQUESTS:
        return False
    if back < routing.times_back(session, req.id):
        # A queue the caller left for a peer who then dropped: they already wait again in a newer
        # one (its action URL counts the returns), so this late word must not end their request.
        return True
    # Moved out of the queue by the REST API with the request still open: only the crisis key does
    # that (ivr/webhooks/crisis.py; a peer who accepts marks the request connected first, a peer who
    # dropped is caught above). The caller went to the crisis line: served, not a caller lost on hold.
    caller_left(session, svc, req, "crisis", now)
    return True


def call_ended(session: Session, svc: Services, call_sid: str, now: datetime) -> int:
    """The caller's call is over (its status callback): every request of it still open is abandoned.

    A caller who hangs up during "Finding a peer for you", before the hold queue starts, never
    reaches the queue's action URL: this is the only word that they left. Their peers' legs
    are stopped and the freed peers offered to the line; returns how many requests closed.
    """
    if not call_sid:
        return 0
    still_open = session.scalars(select(PeerRequest).where(PeerRequest.call_sid == call_sid,
                                                           PeerRequest.status.in_((*routing.OPEN_REQUESTS,
                                                                                   "connected")))).all()
    # Connected but never in the room (their <Dial> would have ended the request): the peer waits alone.
    closed = sum(routing.caller_never_joined(session, svc, req, now) if req.status == "connected"
                 else routing.caller_left(session, svc, req, "abandoned", now) for req in still_open)
    # A peer who signed on by phone is offered once that call is over, never during it.
    signed_on = session.scalars(select(Peer).where(Peer.line_call_sid == call_sid)).all()
    for peer in signed_on:
        peer.line_call_sid = None
    session.commit()
    if closed or signed_on:
        dispatch(session, svc, now)
    return closed


def callback_peer_leg_ended(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> None:
    """The peer's leg of a callback attempt ended (hung up in their in-call menu: the caller is never left alone)."""
    if callbacks.peer_leg_ended(session, svc, attempt, now):
        escalation.peer_leg_over(session, svc, rooms.of_attempt(session, attempt), now)
    dispatch(session, svc, now)


def callback_peer_hung_up(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> None:
    """The peer hung up in a callback's room (their Dial's action): wrap-up; the caller stays only with a counselor."""
    if callbacks.peer_hung_up_in_room(session, svc, attempt, now):
        escalation.peer_leg_over(session, svc, rooms.of_attempt(session, attempt), now)


def callback_caller_left_room(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> None:
    """The called-back caller's side of the room ended: completed, and every leg still ringing for them stopped."""
    callbacks.caller_in_room(session, attempt, now)
    escalation.caller_left(session, svc, rooms.of_attempt(session, attempt), now)


def callback_peer_leg_status(session: Session, svc: Services, attempt: CallbackAttempt, call_status: str,
                             now: datetime) -> None:
    """Status callback of the peer's leg of a callback attempt: picked up, or over."""
    if call_status in ANSWERED_CALL_STATUSES:
        callbacks.peer_answered(session, attempt)
    elif call_status in FINAL_CALL_STATUSES:
        callback_peer_leg_ended(session, svc, attempt, now)


# A wrap-up job names the wrap-up it ends by its start, as epoch seconds: matched to the millisecond.
SAME_WRAP_UP = timedelta(milliseconds=1)
_WHEN = PEERS.c.status_changed_at.type  # binds typed as the column: SQLite keeps a time as text, written one way


@functools.cache
def _end_wrap_ups(break_after: int, one_peer: bool) -> Update:
    """The one UPDATE that ends wrap-ups: one peer's very wrap-up, or every one over by the clock.

    Each peer becomes available, or goes on a break after ``break_after`` calls in a row (0:
    never; the count starts again), or is signed off when deactivated during the call. Returns
    each peer's id and new status. Built once per shape and compiled once.
    """
    active = PEERS.c.active.is_(True)
    values: dict[str, Any] = {"status_changed_at": bindparam("now", type_=_WHEN)}
    if break_after:
        tired = and_(active, func.coalesce(PEERS.c.calls_in_a_row, 0) >= break_after)
        values["status"] = case((PEERS.c.active.is_not(True), "signed_off"), (tired, "break"), else_="available")
        values["calls_in_a_row"] = case((tired, 0), else_=PEERS.c.calls_in_a_row)
    else:
        values["status"] = case((PEERS.c.active.is_not(True), "signed_off"), else_="available")
    if one_peer:
        which = and_(PEERS.c.status == "wrap_up", PEERS.c.id == bindparam("peer_id"),
                     PEERS.c.status_changed_at.between(bindparam("began_from", type_=_WHEN),
                                                       bindparam("began_to", type_=_WHEN)))
    else:
        which = WRAP_UP_OVER
    return update(PEERS).where(which).values(values).returning(PEERS.c.id, PEERS.c.status)


def _finish_wrap_ups(session: Session, svc: Services, now: datetime, one_peer: bool,
                     params: dict[str, Any], commit: bool = True) -> list[tuple[int, str]]:
    """End the wrap-ups :func:`_end_wrap_ups` finds and note each status change; (peer id, status) each."""
    conn = core(session)
    shape = (svc.settings.peer_break_after_calls, one_peer)
    if conn.dialect.name == "postgresql":  # the status changes noted in the same statement: one round trip
        return _noted(session, [(int(peer_id), str(status))
                                for peer_id, status in conn.execute(_end_and_note(*shape), {"now": now, **params})],
                      commit)
    ended = [(int(peer_id), str(status)) for peer_id, status in conn.execute(_end_wrap_ups(*shape), {"now": now, **params})]
    note_statuses(session, ended, now)
    return _noted(session, ended, commit)


@functools.cache
def _end_and_note(break_after: int, one_peer: bool) -> Insert:
    """PostgreSQL: :func:`_end_wrap_ups` and the INSERT of the status changes in one statement (a data-modifying WITH)."""
    ended = _end_wrap_ups(break_after, one_peer).cte("ended")
    return (insert(STATUS_CHANGES).from_select(["peer_id", "status", "at"],
                                               select(ended.c.id, ended.c.status, bindparam("now", type_=_WHEN)))
            .returning(STATUS_CHANGES.c.peer_id, STATUS_CHANGES.c.status))


def _noted(session: Session, ended: list[tuple[int, str]], commit: bool) -> list[tuple[int, str]]:
    """Peers just released by a Core statement: the session forgets what it held of them; committed if asked."""
    if ended:
        changed_by_core(session, Peer, *(peer_id for peer_id, _ in ended))
        if commit:
            session.commit()
    return ended


def wrap_up_passed(session: Session, svc: Services, peer_id: int, started: float, now: datetime) -> str:
    """The wrap-up that began at ``started`` (epoch seconds) is over for ``peer_id``; returns what happened.

    Available (or a break after N calls in a row), then the line is offered, in the same
    transaction: the first claim's commit is the release's too (one wait for the disk, not two).
    A failed claim undoes nothing (:func:`callflows.callbacks.ring_peer`: one statement that writes
    only when both rows held, on PostgreSQL; else in a savepoint), and should the offer fail, the
    release is made again and stands on its own.
    """
    began = datetime.fromtimestamp(started, timezone.utc)
    # Only this very wrap-up: a later call's wrap-up has its own job.
    this_one = {"peer_id": peer_id, "began_from": began - SAME_WRAP_UP, "began_to": began + SAME_WRAP_UP}
    ended = _finish_wrap_ups(session, svc, now, True, this_one, commit=False)
    if not ended:
        peer = session.get(Peer, peer_id)
        return "nothing to do" if peer is None or peer.status != "wrap_up" else "superseded"
    held = callbacks.Held(ended[0][0], session.get_transaction())
    try:
        if not dispatch(session, svc, now, held):
            session.commit()  # nobody was rung: the release on its own (a ring commits it with its claim)
    except Exception:
        session.rollback()
        _finish_wrap_ups(session, svc, now, True, this_one)
        raise
    return ended[0][1]


def reconcile(session: Session, svc: Services, now: datetime) -> None:
    """Free peers whose wrap-up is over by the clock, then offer the line."""
    _finish_wrap_ups(session, svc, now, False, {"due": wrap_up_due(svc, now)})
    dispatch(session, svc, now)


@dataclass(frozen=True)
class StatusChange:
    """What became of a status change: ``changed``, ``unchanged`` or ``on_call`` (refused)."""

    outcome: str
    before: str
    after: str


def set_peer_status(session: Session, svc: Services, peer: Peer, status: str, now: datetime,
                    on_phone: bool = False) -> StatusChange:
    """A peer's own choice (available, break, signed off), by phone, on the staff page or on deactivation.

    A live call's state is never dropped (the call's own end moves the peer on). Going
    available offers the peer to waiting callers and due callbacks: at once from the staff
    page, a few seconds later from the phone (the peer must hang up the sign-on call first).
    """
    if status not in SELF_STATUSES:
        raise ValueError(f"a peer cannot set the status {status!r}")
    before = peer.status
    if before == "busy" and has_live_call(session, peer.id):
        return StatusChange("on_call", before, before)
    if status == "available" and not peer.active:
        return StatusChange("unchanged", before, before)
    if before == status:
        return StatusChange("unchanged", before, before)
    peer.status = status
    peer.status_changed_at = now
    note_status(session, peer.id, status, now)
    peer.auto_break_at = None  # their own choice now: an automatic break is over
    peer.missed_offers = 0
    if status in ("break", "signed_off"):
        peer.calls_in_a_row = 0
    session.commit()
    if status == "available":
        if on_phone:
            try:
                svc.jobs.dispatch_soon(PHONE_SIGN_ON_DELAY)
            except SchedulingError as exc:  # every waiting caller's next hold poll offers them too
                log.warning("could not schedule dispatch: %s", exc)
        else:
            dispatch(session, svc, now)
    return StatusChange("changed", before, status)


def deactivate_peer(session: Session, svc: Services, peer: Peer, now: datetime) -> StatusChange:
    """Take a peer off the roster: never rung again; signed off now, or when a live call ends."""
    peer.active = False
    session.commit()
    return set_peer_status(session, svc, peer, "signed_off", now)


# The hold queue's figures --------------------------------------------------------------------


def waiting_count(session: Session) -> int:
    """Callers waiting for a peer right now (ringing or on hold)."""
    return int(session.scalar(
        select(func.count()).select_from(PeerRequest).where(PeerRequest.status.in_(routing.OPEN_REQUESTS))
    ) or 0)
