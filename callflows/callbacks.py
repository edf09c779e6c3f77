"""Callbacks that keep the caller's place: safe windows, the request, dispatch and each attempt.

Plain Python (the webhooks are in :mod:`ivr.webhooks`); functions take a session, the
process's :class:`~callflows.services.Services` and ``now``, so tests drive the clock.

A callback row is the source of truth. Its life:

- ``draft`` while the caller confirms the number, the window and the message permission;
- ``pending`` with ``due_at`` (the window's start, or the next retry) until a peer is free.
  :func:`callflows.line.dispatch` offers free peers to waiting callers and due callbacks in one
  order by arrival time (the callback keeps the caller's first ``arrived_at``);
- ``dialing`` while an attempt runs: one atomic ``UPDATE ... WHERE status = 'pending'``
  claims it before Twilio is asked for anything, so two dispatchers never dial twice. The
  peer is rung first; when they press 1 the caller is dialled from the line's number with
  answering-machine detection; every leg has a status callback;
- ``completed`` (connected), ``missed`` (attempts or window used up) or ``canceled``.

An attempt (:class:`~models.tables.CallbackAttempt`) moves through the stages ``peer_ringing``,
``peer_answered``, ``caller_ringing``, ``connected`` and ``ended`` (with an ``outcome``).
A job scheduled through ``svc.jobs`` wakes dispatch when a callback falls due; the reconciler
(:mod:`queues.reconcile`) re-creates it after a Redis flush. Windows and the retry schedule
are settings, checked when the process starts (:meth:`callflows.settings.Settings.check`).
"""
from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, NamedTuple, Sequence, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (CompoundSelect, Insert, Integer, Row, Select, Table, bindparam, func, insert, literal, null, or_, select, true,
                        tuple_, union_all, update)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session, SessionTransaction

from callflows.calls import FINAL_CALL_STATUSES, by_id, caller_for_call, find_or_create_call, is_withheld, record_event
from callflows.errors import SchedulingError, TwilioGatewayError
from callflows.hours import SCHEDULE, Schedule, defer_to_opening, schedule_of
from callflows.loader import Flow
from callflows.peers import (PEERS, STATUS_CHANGES, FreePeer, choose_peers, claim_peer, free_peers, offer_missed, offer_taken,
                             release_peer, start_wrap_up)
from callflows.sql import changed_by_core, core, rowcount
from callflows.services import Services
from callflows.settings import Settings
from callflows.times import aware
from models import CallbackRequest, Peer
from models.crypto import normalize_number
from models.tables import CallbackAttempt

log = logging.getLogger(__name__)

LIVE_STAGES = ("peer_ringing", "peer_answered", "caller_ringing", "connected")
PEER_RING_S = 20
CALLER_RING_S = 30
# An attempt Twilio never told us anything about after this long is presumed lost (a worker
# killed before it could ask Twilio): it counts as a failed attempt and follows the retry
# schedule, so at worst the caller hears from us once more, later, never twice at once.
STALE_ATTEMPT = timedelta(minutes=10)
RETRY_SAME_PEER_AFTER = timedelta(minutes=2)
DUE_PAGE = 10  # due callbacks read at a time (only as many as there are free peers are placed)
# Ends of an attempt on the peer's side (did not take it, left the room while the caller's
# phone rang, or Twilio refused to ring their number): that peer is not rung again for this
# callback at once, so another free peer gets it instead of the same refusal every dispatch.
PEER_MISSES = ("peer_no_answer", "peer_left", "peer_failed")
CALLER_FAILURES = {"no-answer": "no_answer", "busy": "busy", "failed": "failed", "canceled": "no_answer",
                   "completed": "no_answer"}


# Windows ------------------------------------------------------------------------------------


def _local(day: date, hour: int, zone: ZoneInfo) -> datetime:
    # Wall-clock hour on that day; zoneinfo resolves daylight saving (a skipped hour moves on).
    return datetime.combine(day, time(hour), tzinfo=zone).astimezone(timezone.utc).astimezone(zone)


def window_bounds(choice: str, now: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """The next safe window for ``choice`` as (not_before, not_after) in UTC; a window open now starts now."""
    if choice == "now":
        return now, now + timedelta(hours=settings.callback_now_hours)
    start_h, end_h = settings.windows[choice]
    zone = settings.zone
    today = now.astimezone(zone).date()
    # Yesterday's window may still be open after midnight (an evening window to 1 am).
    for offset in (-1, 0, 1, 2):
        day = today + timedelta(days=offset)
        start = _local(day, start_h, zone)
        end = _local(day + timedelta(days=1) if end_h <= start_h else day, end_h, zone)
        if end > now:
            return max(start, now).astimezone(timezone.utc), end.astimezone(timezone.utc)
    raise AssertionError("a daily window always opens within two days")


# The part of the day each hour belongs to, as the flows name it ("pm", "de la tarde").
_DAY_PARTS = ((6, "part_early"), (12, "part_morning"), (13, "part_noon"), (19, "part_afternoon"), (24, "part_night"))


def spoken_clock(hour: int, minute: int, flow: Flow) -> str:
    """A time of day as people say it in the flow's language: ``3:40 pm``, ``las 3:40 de la tarde``, ``5 pm``."""
    hour %= 24
    part = flow.text(next(name for end, name in _DAY_PARTS if hour < end))
    twelve = hour % 12 or 12
    if minute:
        return flow.counted("time_hm", twelve, hour=twelve, minute=f"{minute:02d}", part=part)
    return flow.counted("time_h", twelve, hour=twelve, part=part)


def spoken_time(moment: datetime, settings: Settings, flow: Flow) -> str:
    """A moment as people say it, in the line's zone and the flow's language: ``3:40 pm``."""
    local = moment.astimezone(settings.zone)
    return spoken_clock(local.hour, local.minute, flow)


def spoken_hour(hour: int, flow: Flow) -> str:
    """A whole hour as people say it in the flow's language: ``5 pm``, ``las 5 de la tarde``."""
    return spoken_clock(hour, 0, flow)


def spoken_digits(number: str) -> str:
    """A number read back digit by digit, in groups, with pauses: ``5 5 5, 0 1 9, 9 9 9 9``."""
    digits = re.sub(r"\D", "", number)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    groups = [digits[:3], digits[3:6], digits[6:]] if len(digits) == 10 else [digits]
    return ", ".join(" ".join(group) for group in groups if group)


@dataclass(frozen=True)
class KeyedNumber:
    """A number the caller keyed in: the E.164 form, or what is wrong with it."""

    e164: str | None
    problem: str | None = None  # a flow string name
    count: int = 0


def check_keyed_number(digits: str) -> KeyedNumber:
    """Accept 10 digits (area code first), or 11 starting with 1; say what is wrong otherwise."""
    digits = re.sub(r"\D", "", digits or "")
    if not digits:
        return KeyedNumber(None, "callback_key_none")
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) < 10:
        return KeyedNumber(None, "callback_key_short", len(digits))
    if len(digits) > 10:
        return KeyedNumber(None, "callback_key_long", len(digits))
    if digits[0] in "01":
        return KeyedNumber(None, "callback_key_area", len(digits))
    return KeyedNumber(normalize_number("+1" + digits), None, 10)


# The request -------------------------------------------------------------------------------


def draft_for_call(session: Session, call_sid: str) -> CallbackRequest | None:
    """The callback being asked for on this call, if any."""
    return session.scalar(select(CallbackRequest).where(CallbackRequest.call_sid == call_sid,
                                                        CallbackRequest.status == "draft"))


def start_draft(session: Session, svc: Services, call_sid: str, call_id: int | None, caller_id: int | None,
                number: str | None, language: str, arrived_at: datetime) -> CallbackRequest:
    """Begin (or resume) the request on this call; it keeps ``arrived_at``, the caller's place in line."""
    cb = draft_for_call(session, call_sid)
    if cb is None:
        cb = CallbackRequest(call_sid=call_sid, call_id=call_id, caller_id=caller_id, status="draft",
                             number_encrypted=svc.vault.encrypt_text(normalize_number(number) if number else ""),
                             language=language, arrived_at=arrived_at)
        session.add(cb)
    else:
        cb.arrived_at = min(aware(cb.arrived_at) or arrived_at, arrived_at)
    session.flush()
    return cb


def begin_request(session: Session, svc: Services, call_sid: str, number: str | None, language: str,
                  arrived_at: datetime | None, now: datetime) -> tuple[CallbackRequest, bool]:
    """A caller asks for a callback on this call; returns the draft and whether their number is withheld.

    The caller keeps their place in line: ``arrived_at`` when they come from the hold queue,
    else the start of this call.
    """
    call = find_or_create_call(session, call_sid)
    session.flush()
    withheld = is_withheld(number)
    arrived = arrived_at or aware(call.started_at) or now
    cb = start_draft(session, svc, call_sid, call.id, call.caller_id, None if withheld else number, language, arrived)
    record_event(session, call_sid, "callback", None, "withheld" if withheld else "caller id")
    session.commit()
    return cb, withheld


def draft_of_call(session: Session, cb_id: int, call_sid: str) -> CallbackRequest | None:
    """The draft request ``cb_id``, only while it is being asked for on this call (never another caller's)."""
    cb = by_id(session, CallbackRequest, cb_id)
    if cb is None or cb.status != "draft" or cb.call_sid != call_sid:
        return None
    return cb


def set_number(session: Session, svc: Services, cb: CallbackRequest, e164: str) -> None:
    """The caller keyed the number to call back (stored encrypted)."""
    cb.number_encrypted = svc.vault.encrypt_text(e164)
    session.commit()


def choose_window(session: Session, cb: CallbackRequest, window: str) -> None:
    """The caller chose when to be called (``now`` or a window of the settings)."""
    cb.window = window
    session.commit()


def finish_request(session: Session, svc: Services, cb: CallbackRequest, call_sid: str, allow_message: bool,
                   now: datetime) -> None:
    """The caller on ``call_sid`` chose whether to allow a message: the request is complete, waiting for its window."""
    cb.allow_message = allow_message
    call = find_or_create_call(session, call_sid)
    call.outcome = "callback_requested"
    confirm(session, svc, cb, now)


def starts_today(settings: Settings, cb: CallbackRequest, now: datetime) -> bool:
    """True when a confirmed callback's window opens today in the line's time zone (else tomorrow)."""
    start = aware(cb.not_before)
    assert start is not None
    return start.astimezone(settings.zone).date() == now.astimezone(settings.zone).date()


def callback_of_caller(session: Session, cb_id: int, call_sid: str) -> CallbackRequest | None:
    """Callback ``cb_id``, only when it belongs to the caller on this call (a returning caller keeps or cancels it)."""
    cb = by_id(session, CallbackRequest, cb_id)
    caller = caller_for_call(session, call_sid)
    if cb is None or caller is None or cb.caller_id != caller.id:
        return None
    return cb


def number_of(svc: Services, cb: CallbackRequest) -> str:
    """The number to call back (decrypted)."""
    return svc.vault.decrypt_text(cb.number_encrypted)


def confirm(session: Session, svc: Services, cb: CallbackRequest, now: datetime) -> None:
    """The caller said yes to everything: the callback waits for its window and a free peer."""
    not_before, not_after = window_bounds(cb.window, now, svc.settings)
    # A callback asked for while the line is closed is made at the next opening.
    not_before, not_after = defer_to_opening(session, svc.settings, not_before, not_after,
                                             svc.settings.windows.get(cb.window))
    cb.not_before, cb.not_after, cb.due_at = not_before, not_after, not_before
    cb.status = "pending"
    cb.updated_at = now
    session.commit()
    _wake(svc, cb)


def pending_for_caller(session: Session, caller_id: int) -> CallbackRequest | None:
    """A callback this caller is still waiting for (the oldest)."""
    return session.scalar(select(CallbackRequest).where(CallbackRequest.caller_id == caller_id,
                                                        CallbackRequest.status == "pending")
                          .order_by(CallbackRequest.arrived_at).limit(1))


def cancel(session: Session, cb: CallbackRequest, now: datetime) -> bool:
    """Cancel a pending callback (False if an attempt already started)."""
    done = session.execute(update(CallbackRequest).where(CallbackRequest.id == cb.id,
                                                         CallbackRequest.status == "pending")
                           .values(status="canceled", outcome="canceled_by_caller", updated_at=now))
    session.commit()
    session.refresh(cb)
    return rowcount(done) == 1


def _wake(svc: Services, cb: CallbackRequest) -> None:
    """Schedule the job that offers this callback when it falls due (the reconciler repairs a failure)."""
    try:
        svc.jobs.callback_due(cb.id, cb.attempts, aware(cb.due_at))
    except SchedulingError as exc:
        log.warning("could not schedule callback %s (the reconciler will): %s", cb.id, exc)


# URLs Twilio fetches, from the routes themselves (jobs have no request)


def peer_whisper_url(svc: Services, attempt_id: int) -> str:
    """What Twilio fetches when the peer picks up."""
    return svc.public_url("callbacks.peer_whisper", attempt_id=attempt_id)


def peer_status_url(svc: Services, attempt_id: int) -> str:
    """Status callback of the peer's leg."""
    return svc.public_url("callbacks.peer_status", attempt_id=attempt_id)


def caller_url(svc: Services, attempt_id: int) -> str:
    """What Twilio fetches when the caller (or their machine) answers."""
    return svc.public_url("callbacks.caller_answer", attempt_id=attempt_id)


def caller_status_url(svc: Services, attempt_id: int) -> str:
    """Status callback of the caller's leg."""
    return svc.public_url("callbacks.caller_status", attempt_id=attempt_id)


def peer_notice_url(svc: Services, attempt_id: int) -> str:
    """Where the peer is redirected when the caller could not be reached."""
    return svc.public_url("callbacks.peer_notice", attempt_id=attempt_id)


def room_name(attempt_id: int) -> str:
    """The private conference of one callback attempt."""
    return f"callback-{attempt_id}"


# Dispatch ----------------------------------------------------------------------------------


class DueCallback(NamedTuple):
    """What dispatch needs of a due callback to offer it (read as plain columns, not an ORM object)."""

    id: int
    language: str
    attempts: int
    arrived_at: datetime


@dataclass(frozen=True)
class DuePage:
    """A page of the line of due callbacks, read in one round trip with what dispatch checks before ringing."""

    callbacks: list[DueCallback]  # in arrival order
    live: int  # callback attempts in progress (the cap on concurrent outbound callback calls counts these)
    missed: frozenset[int]  # ids of those a peer once missed: only theirs are read for the recent misses
    schedule: Schedule | None = None  # the hours as the database holds them now, when read with the page


@dataclass(frozen=True)
class Held:
    """A peer whose release this transaction made and has not committed: it holds their row locked until then."""

    peer_id: int
    transaction: SessionTransaction | None  # the session's transaction that made the release

    def holds(self, session: Session, peer_id: int) -> bool:
        """True while ``session`` is still in that transaction (not committed since) and ``peer_id`` is this peer."""
        return peer_id == self.peer_id and self.transaction is not None and session.get_transaction() is self.transaction


CALLBACKS, ATTEMPTS = cast(Table, CallbackRequest.__table__), cast(Table, CallbackAttempt.__table__)
_WHEN = CALLBACKS.c.due_at.type  # binds typed as their columns: SQLite keeps a time as text, written one way


@functools.cache
def _due_page(before: bool, after: bool) -> Select[Any]:
    """The statement that reads a page of the line (one per shape, built and compiled once).

    Plain Core: each row is a few columns, with whether a peer ever missed this callback and the
    attempts in progress (the same for every row).
    """
    ever_missed = (select(ATTEMPTS.c.id)
                   .where(ATTEMPTS.c.callback_id == CALLBACKS.c.id, ATTEMPTS.c.outcome.in_(PEER_MISSES)).exists())
    live = select(func.count()).select_from(ATTEMPTS).where(ATTEMPTS.c.stage.in_(LIVE_STAGES)).scalar_subquery()
    now = bindparam("now", type_=_WHEN)
    stmt = (select(*(CALLBACKS.c[name] for name in DueCallback._fields), ever_missed.label("missed"), live.label("live"))
            .where(CALLBACKS.c.status == "pending", CALLBACKS.c.due_at <= now,
                   or_(CALLBACKS.c.not_after.is_(None), CALLBACKS.c.not_after > now))
            .order_by(CALLBACKS.c.arrived_at, CALLBACKS.c.id)
            .limit(bindparam("limit", type_=Integer)))
    if before:
        stmt = stmt.where(CALLBACKS.c.arrived_at < bindparam("before", type_=_WHEN))
    if after:  # the place in line after a callback: (arrived_at, id) as the order has it
        # One row comparison, not "later, or as late with a higher id": PostgreSQL starts the walk of
        # ix_callback_requests_line there, where the OR was a filter on every row before it.
        stmt = stmt.where(tuple_(CALLBACKS.c.arrived_at, CALLBACKS.c.id)
                          > tuple_(bindparam("after_at", type_=_WHEN), bindparam("after_id", type_=Integer)))
    return stmt


_A_CALLBACK = 3  # the kind of a page's row beside the schedule's (0 a period, 1 a holiday, 2 the closure in force)
_HOURS_COLUMNS = ("kind", "weekday", "opens", "closes", "day", "until")


@functools.cache
def due_page_with_hours(before: bool) -> CompoundSelect:
    """The first page of the line and the whole schedule in one statement (one round trip, not two).

    A UNION ALL: the page's rows (kind 3) and :data:`callflows.hours.SCHEDULE`'s (kinds 0-2), each
    with the other's columns NULL. Read afresh on every dispatch: a closure by hand stops the very
    next one. The schedule is three tiny tables, so it is read with the page even when nobody is
    due (where it used to be skipped): cheaper than a round trip when somebody is.
    """
    page = _due_page(before, False).subquery("page")
    hours = SCHEDULE.subquery("hours")
    return union_all(
        select(*page.c, literal(_A_CALLBACK).label("kind"),
               *(sql_cast(null(), hours.c[name].type).label(name) for name in _HOURS_COLUMNS[1:])),
        select(*(sql_cast(null(), column.type).label(column.name) for column in page.c),
               *(hours.c[name] for name in _HOURS_COLUMNS)),
    )


def _page_of(rows: Iterable[Row[Any]], start: int = 0, schedule: Schedule | None = None) -> DuePage:
    """A :class:`DuePage` of rows whose columns from ``start`` on are :func:`_due_page`'s, put in line order."""
    width = len(DueCallback._fields)
    # A UNION ALL keeps no order, so the rows are sorted here (ten at most; a plain page is sorted already).
    read = sorted(((DueCallback._make(row[start:start + width]), bool(row[start + width]), int(row[start + width + 1]))
                   for row in rows), key=lambda each: (each[0].arrived_at, each[0].id))
    return DuePage(callbacks=[cb for cb, _missed, _live in read], live=read[0][2] if read else 0,
                   missed=frozenset(cb.id for cb, missed, _live in read if missed), schedule=schedule)


def first_page_of(rows: Sequence[Row[Any]], zone: ZoneInfo, start: int = 0) -> DuePage:
    """The first page and the schedule from rows of :func:`due_page_with_hours` (its columns from ``start`` on)."""
    return _page_of((row for row in rows if row.kind == _A_CALLBACK), start,
                    schedule_of((row for row in rows if row.kind != _A_CALLBACK), zone))


def due_callbacks(session: Session, now: datetime, arrived_before: datetime | None = None,
                  limit: int = DUE_PAGE, after: DueCallback | None = None, zone: ZoneInfo | None = None) -> DuePage:
    """Pending callbacks whose time has come and whose window is open, in arrival order.

    Only those that arrived before ``arrived_before`` (if given), those after ``after`` in the
    line, and at most ``limit`` of them. With ``zone`` (the first page only), the schedule too,
    in the same round trip.
    """
    params: dict[str, Any] = {"now": now, "limit": limit}
    if arrived_before is not None:
        params["before"] = arrived_before
    if after is not None:
        params.update(after_at=after.arrived_at, after_id=after.id)
    if zone is not None and after is None:
        return first_page_of(core(session).execute(due_page_with_hours(arrived_before is not None), params).all(), zone)
    return _page_of(core(session).execute(_due_page(arrived_before is not None, after is not None), params))


def live_attempts(session: Session) -> int:
    """Callback attempts in progress (the cap on concurrent outbound callback calls counts these)."""
    return int(session.scalar(select(func.count()).select_from(CallbackAttempt)
                              .where(CallbackAttempt.stage.in_(LIVE_STAGES))) or 0)


def _recent_peer_misses(session: Session, callback_ids: list[int], now: datetime) -> dict[int, set[int]]:
    """The peers who missed each of these callbacks lately (one query for a page of the line)."""
    rows = session.execute(select(CallbackAttempt.callback_id, CallbackAttempt.peer_id, CallbackAttempt.ended_at)
                           .where(CallbackAttempt.callback_id.in_(callback_ids),
                                  CallbackAttempt.outcome.in_(PEER_MISSES)))
    missed: dict[int, set[int]] = {}
    for callback_id, peer_id, ended_at in rows:
        if peer_id is not None and (aware(ended_at) or now) > now - RETRY_SAME_PEER_AFTER:
            missed.setdefault(callback_id, set()).add(peer_id)
    return missed


def offer_due(session: Session, svc: Services, now: datetime, arrived_before: datetime | None = None,
              free: list[FreePeer] | None = None, held: Held | None = None, first: DuePage | None = None) -> int:
    """Offer free peers to due callbacks (arrived before ``arrived_before``); returns peer calls placed.

    The line is read a page at a time: with a thousand callbacks waiting and one peer free,
    one short page is read, not a thousand rows (which the session would then have to check
    on every claim); the page comes with the attempts in progress (the cap) and which of its
    callbacks a peer once missed, and the first page with the hours (one round trip); the free
    peers (``free``: as the caller just read them) once a page and again after each ring (a claim
    is atomic anyway: a peer taken meanwhile is simply not claimed). ``first``: the first page
    with the hours, as the caller just read them (:func:`first_page_of`). ``held``: the peer whose
    release this transaction has not committed yet (see :func:`_claim`).
    """
    placed = 0
    after: DueCallback | None = None
    while True:
        if first is not None and after is None and arrived_before is None:
            page = first
        else:
            page = due_callbacks(session, now, arrived_before, limit=DUE_PAGE, after=after,
                                 zone=None if after else svc.settings.zone)
        if not page.callbacks:
            return placed
        if page.schedule is not None and not page.schedule.is_open(now):
            return 0  # a closed line calls nobody back; the minute tick offers them once it opens
        live = page.live
        if free is None:
            free = free_peers(session)
        missed: dict[int, set[int]] | None = None  # read once a page, when a callback a peer missed has a peer to offer
        for cb in page.callbacks:
            # Cheap checks first: with a thousand callbacks waiting, stop as soon as nobody is free.
            if live >= svc.settings.callback_max_concurrent or not free:
                return placed
            exclude: set[int] = set()
            if cb.id in page.missed and choose_peers(free, cb.language, None, 1):
                if missed is None:
                    missed = _recent_peer_misses(session, sorted(page.missed), now)
                exclude = missed.get(cb.id, set())
            peers = choose_peers(free, cb.language, None, 1, exclude)
            while peers:  # none: nobody free speaks this caller's language (or only peers who just missed it)
                rung = ring_peer(session, svc, cb, peers[0], now, held)
                free = free_peers(session)
                if rung:
                    placed += 1
                    live += 1
                    break
                if any(p.id == peers[0].id for p in free):
                    break  # the peer is still free: the callback was taken meanwhile, so the next in line is offered
                # Another dispatcher took that peer: this callback keeps its turn with the next free peer.
                peers = choose_peers(free, cb.language, None, 1, exclude)
        free = None  # the next page reads them again
        if len(page.callbacks) < DUE_PAGE:
            return placed
        after = page.callbacks[-1]


_CLAIM = (update(CALLBACKS).where(CALLBACKS.c.id == bindparam("callback_id"), CALLBACKS.c.status == "pending")
          .values(status="dialing", peer_id=bindparam("peer_id"), updated_at=bindparam("now", type_=_WHEN)))
_NEW_ATTEMPT = (insert(ATTEMPTS).values(callback_id=bindparam("callback_id"), number=bindparam("number"),
                                        peer_id=bindparam("peer_id"), stage="peer_ringing",
                                        started_at=bindparam("now", type_=_WHEN))
                .returning(ATTEMPTS.c.id))
_PEER_CALL_SID = (update(ATTEMPTS).where(ATTEMPTS.c.id == bindparam("attempt_id"), ATTEMPTS.c.peer_call_sid.is_(None))
                  .values(peer_call_sid=bindparam("sid")))


def _claim_together() -> Insert:
    """PostgreSQL: both claims, the peer's status change and the attempt in one statement (one round trip).

    ``FOR UPDATE`` locks the callback and the peer and checks each again as last committed
    (still pending, still available); the writes happen only when both are, so a claim never
    half-succeeds and nothing needs undoing. Returns the attempt's id, or no row.
    """
    now = bindparam("now", type_=_WHEN)
    cb = (select(CALLBACKS.c.id, CALLBACKS.c.attempts)
          .where(CALLBACKS.c.id == bindparam("callback_id"), CALLBACKS.c.status == "pending").with_for_update().cte("cb"))
    free = (select(PEERS.c.id).where(PEERS.c.id == bindparam("peer_id"), PEERS.c.status == "available")
            .with_for_update().cte("free"))
    both = (select(cb.c.id.label("callback_id"), cb.c.attempts, free.c.id.label("peer_id"))
            .join_from(cb, free, true()).cte("claim"))
    callback_claimed = (update(CALLBACKS).where(CALLBACKS.c.id.in_(select(both.c.callback_id)))
                        .values(status="dialing", peer_id=bindparam("peer_id"), updated_at=now).cte("callback_claimed"))
    peer_claimed = (update(PEERS).where(PEERS.c.id.in_(select(both.c.peer_id)))
                    .values(status="busy", status_changed_at=now).cte("peer_claimed"))
    noted = (insert(STATUS_CHANGES).from_select(["peer_id", "status", "at"], select(both.c.peer_id, literal("busy"), now))
             .cte("noted"))
    return (insert(ATTEMPTS).from_select(["callback_id", "number", "peer_id", "stage", "started_at"],
                                         select(both.c.callback_id, both.c.attempts + 1, both.c.peer_id,
                                                literal("peer_ringing"), now))
            .returning(ATTEMPTS.c.id).add_cte(callback_claimed, peer_claimed, noted))


_CLAIM_TOGETHER = _claim_together()


def _claim(session: Session, cb: DueCallback, peer: FreePeer, now: datetime, held: Held | None = None) -> int | None:
    """Claim the callback and the peer atomically and record the attempt; its id, or None when either was taken.

    In a savepoint: a failed claim undoes only itself, never what the transaction did before (the
    release of the peer who just came free), and lets go at once of the rows it locked (another
    dispatcher waiting for this callback gets it in its turn). On PostgreSQL one statement in it,
    and no savepoint for the peer this transaction itself released (``held``), see below.
    """
    params = {"callback_id": cb.id, "peer_id": peer.id, "now": now}
    if held is not None and held.holds(session, peer.id) and session.get_bind().dialect.name == "postgresql":
        # No savepoint needed (two round trips fewer on the wrap-up's path to the peer's phone):
        # - Nothing to undo: the one statement writes only when both rows held (see _claim_together).
        #   "Taken meanwhile" is no error: FOR UPDATE waits for the taker's commit, reads the row
        #   again as committed and finds it no longer pending (READ COMMITTED: no serialization
        #   failure), so the statement returns no row and the transaction, the release in it, goes on.
        # - No lock that matters kept: this transaction already holds the peer's row (its release
        #   updated it), so the claim fails only when the callback is not pending; it locked that
        #   row only if its recheck waited for the taker, who has committed, and lets go of it at
        #   our commit a moment later (before any call to the phone network). No other dispatcher
        #   waits on the peer's row: until the release commits, they read the peer as in wrap-up.
        # - An error all the same (the connection lost): wrap_up_passed rolls back and makes the
        #   release again on its own, as it does for any failure of the offer.
        # Any other peer (read as free, its row not ours) still claims in a savepoint: a failed claim
        # may have locked the callback, or that peer, and holding either until our commit could make
        # two dispatchers wait on each other.
        attempt_id = core(session).execute(_CLAIM_TOGETHER, params).scalar()
        return None if attempt_id is None else int(attempt_id)
    claim = session.begin_nested()
    conn = core(session)  # after the savepoint began: SQLAlchemy emits SAVEPOINT when the connection is asked for
    if conn.dialect.name == "postgresql":
        attempt_id = conn.execute(_CLAIM_TOGETHER, params).scalar()
    elif rowcount(conn.execute(_CLAIM, params)) == 1 and claim_peer(session, peer.id, now):
        attempt_id = conn.execute(_NEW_ATTEMPT, {**params, "number": cb.attempts + 1}).scalar_one()
    else:
        attempt_id = None
    if attempt_id is None:
        claim.rollback()  # neither claim stands alone
        return None
    return int(attempt_id)


def ring_peer(session: Session, svc: Services, cb: DueCallback, peer: FreePeer, now: datetime,
              held: Held | None = None) -> bool:
    """Claim the callback and the peer atomically, record the attempt, then ring the peer's phone.

    Core statements (no ORM loading or unit of work on the way to the peer's phone), one commit.
    ``held``: the peer whose release this transaction has not committed yet, if any (see :func:`_claim`).
    """
    attempt_id = _claim(session, cb, peer, now, held)
    if attempt_id is None:
        return False
    changed_by_core(session, CallbackRequest, cb.id)
    changed_by_core(session, Peer, peer.id)
    session.commit()  # claimed and recorded before Twilio can call back
    try:
        sid = svc.twilio.create_call(svc.vault.decrypt_text(peer.phone_encrypted), peer_whisper_url(svc, attempt_id),
                                     peer_status_url(svc, attempt_id), timeout=PEER_RING_S)
    except TwilioGatewayError:  # network failures included
        log.exception("could not ring peer %s for callback %s", peer.id, cb.id)
        attempt, request, rung = (session.get(CallbackAttempt, attempt_id), session.get(CallbackRequest, cb.id),
                                  session.get(Peer, peer.id))
        assert attempt is not None and request is not None and rung is not None
        _end_attempt(session, attempt, "peer_failed", now)
        _back_in_line(session, request, now)
        session.refresh(rung)
        release_peer(session, rung, now)
        session.commit()
        return False
    # A webhook of this very call may already have recorded the SID; never overwrite it.
    core(session).execute(_PEER_CALL_SID, {"attempt_id": attempt_id, "sid": sid})
    session.commit()
    log.info("callback %s: ringing peer %s (attempt %s)", cb.id, peer.id, attempt_id)
    return True


def _end_attempt(session: Session, attempt: CallbackAttempt, outcome: str, now: datetime,
                 stages: tuple[str, ...] = LIVE_STAGES) -> bool:
    """Move an attempt to ``ended`` once (False when another request already ended it)."""
    done = session.execute(update(CallbackAttempt)
                           .where(CallbackAttempt.id == attempt.id, CallbackAttempt.stage.in_(stages))
                           .values(stage="ended", outcome=outcome, ended_at=now))
    session.commit()
    session.refresh(attempt)
    return rowcount(done) == 1


def _back_in_line(session: Session, cb: CallbackRequest, now: datetime) -> None:
    """The peer side failed, not the caller: the callback is due again at once, same place in line."""
    session.refresh(cb)
    if cb.status == "dialing":
        cb.status = "pending"
        cb.peer_id = None
        cb.due_at = now
        cb.updated_at = now
    session.commit()


def next_try(settings: Settings, cb: CallbackRequest, now: datetime) -> datetime | None:
    """When to try the caller again after ``cb.attempts`` failed tries; None when it is missed."""
    if cb.attempts >= settings.callback_max_attempts:
        return None
    waits = settings.retry_waits
    when = now + waits[min(cb.attempts, len(waits)) - 1]
    not_after = aware(cb.not_after)
    return when if not_after is None or when < not_after else None


def caller_not_reached(session: Session, svc: Services, attempt: CallbackAttempt, outcome: str,
                       now: datetime) -> bool:
    """The caller did not answer (or a machine did): retry inside the window, else missed; tell the peer."""
    if not _end_attempt(session, attempt, outcome, now):
        return False
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    cb.attempts = attempt.number
    when = next_try(svc.settings, cb, now)
    cb.outcome = outcome
    cb.updated_at = now
    cb.peer_id = None
    if when is None:
        cb.status = "missed"
    else:
        cb.status, cb.due_at = "pending", when
    session.commit()
    if when is not None:
        _wake(svc, cb)
    if attempt.peer_call_sid:
        try:
            svc.twilio.update_call(attempt.peer_call_sid, url=peer_notice_url(svc, attempt.id), method="POST")
        except TwilioGatewayError:  # network failures included
            log.info("peer leg of attempt %s already ended", attempt.id)
    return True


# Webhook steps -----------------------------------------------------------------------------


def attempt_for_call(session: Session, attempt_id: int, leg: str, call_sid: str) -> CallbackAttempt | None:
    """The attempt whose ``leg`` (``peer`` or ``caller``) is this call; a SID not stored yet is adopted first."""
    attempt = by_id(session, CallbackAttempt, attempt_id)
    if attempt is None or not call_sid:
        return None
    column = CallbackAttempt.peer_call_sid if leg == "peer" else CallbackAttempt.caller_call_sid
    stored = attempt.peer_call_sid if leg == "peer" else attempt.caller_call_sid
    if stored is None:
        # The dialler may have died before storing the SID (a killed worker): the first
        # webhook of the call names it, and only this attempt's URLs carry its id.
        session.execute(update(CallbackAttempt).where(CallbackAttempt.id == attempt_id, column.is_(None))
                        .values({column: call_sid}))
        session.commit()
        session.refresh(attempt)
        stored = attempt.peer_call_sid if leg == "peer" else attempt.caller_call_sid
    return attempt if stored == call_sid else None


def peer_answered(session: Session, attempt: CallbackAttempt) -> None:
    """The peer picked up (the whisper plays)."""
    session.execute(update(CallbackAttempt).where(CallbackAttempt.id == attempt.id,
                                                  CallbackAttempt.stage == "peer_ringing")
                    .values(stage="peer_answered"))
    session.commit()
    session.refresh(attempt)


def peer_accepts(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> str:
    """The peer pressed 1: dial the caller from the line's number with machine detection.

    Returns ``dialing``, ``gone`` (the attempt is over) or ``failed`` (Twilio refused).
    """
    moved = session.execute(update(CallbackAttempt)
                            .where(CallbackAttempt.id == attempt.id,
                                   CallbackAttempt.stage.in_(("peer_ringing", "peer_answered")))
                            .values(stage="caller_ringing"))
    session.commit()
    if rowcount(moved) != 1:
        return "gone"
    session.refresh(attempt)
    if attempt.peer_id is not None:
        offer_taken(session, attempt.peer_id)
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    try:
        sid = svc.twilio.create_call(
            number_of(svc, cb), caller_url(svc, attempt.id), caller_status_url(svc, attempt.id),
            timeout=CALLER_RING_S,
            # DetectMessageEnd waits for the beep, so a permitted message is not cut off.
            machine_detection="DetectMessageEnd" if cb.allow_message else "Enable",
        )
    except TwilioGatewayError:  # network failures included
        log.exception("could not dial the caller of callback %s", cb.id)
        caller_not_reached(session, svc, attempt, "failed", now)
        return "failed"
    session.execute(update(CallbackAttempt).where(CallbackAttempt.id == attempt.id,
                                                  CallbackAttempt.caller_call_sid.is_(None))
                    .values(caller_call_sid=sid))
    session.commit()
    return "dialing"


# What Twilio's answering machine detection says (AnsweredBy), and what the line does with it.
# Two duties pull against each other: a person who asked for this call must never be dropped,
# and nothing may name the line to a machine (a shared answering machine is where others learn).
# - ``human``: connect to the waiting peer.
# - ``machine_start``, ``machine_end_beep|silence|other``: a machine. The neutral message only if
#   the caller allowed one; the attempt counts and the retry schedule follows.
# - ``fax``: nobody can hear anything, so nothing is said. The attempt counts (outcome ``fax``):
#   a number a fax answers is most often keyed wrong or a fax line, and every try rings a peer
#   first, so the tries stay bounded by CALLBACK_MAX_ATTEMPTS, while a shared voice and fax line
#   still gets its next try on the schedule.
# - ``unknown``: detection could not tell: often a person who says nothing to an unknown number
#   (someone wary, or unwell), sometimes a machine with a short greeting. Connecting at once could
#   put the peer's voice on a tape; hanging up could drop the person. So the phone hears a line
#   that says nothing about the service ("Hello. To take this call, press 1."): any key is a
#   person, who is connected; no key is treated as a machine.
HUMAN, MACHINE, FAX, UNSURE = "human", "machine", "fax", "unsure"


def answer_kind(answered_by: str | None) -> str:
    """Who answered, from Twilio's AnsweredBy: ``human``, ``machine``, ``fax`` or ``unsure``.

    No AnsweredBy (detection was not asked for) is a person, as before detection existed.
    """
    if not answered_by or answered_by == "human":
        return HUMAN
    if answered_by.startswith("machine"):
        return MACHINE
    if answered_by == "fax":
        return FAX
    return UNSURE  # "unknown", or a value Twilio adds later: ask for a key rather than guess


def is_machine(answered_by: str | None) -> bool:
    """Twilio's AnsweredBy for an answering machine or fax."""
    return answer_kind(answered_by) in (MACHINE, FAX)


def caller_answers(session: Session, svc: Services, attempt: CallbackAttempt, answered_by: str | None,
                   now: datetime, pressed_key: bool = False) -> str:
    """The caller's phone answered: ``human`` (connect), ``machine`` or ``fax`` (retry later),
    ``unsure`` (ask for a key first) or ``gone``; ``pressed_key``: a key was pressed after ``unsure``."""
    attempt.answered_by = (answered_by or "")[:32] or None
    session.commit()
    kind = HUMAN if pressed_key else answer_kind(answered_by)
    if kind in (MACHINE, FAX):
        return kind if caller_not_reached(session, svc, attempt, kind, now) else "gone"
    if kind == UNSURE:
        session.refresh(attempt)
        return UNSURE if attempt.stage == "caller_ringing" else "gone"
    moved = session.execute(update(CallbackAttempt)
                            .where(CallbackAttempt.id == attempt.id, CallbackAttempt.stage == "caller_ringing")
                            .values(stage="connected"))
    if rowcount(moved) != 1:
        session.commit()
        return "gone"
    # Not completed yet: a caller who hangs up during the greeting never reached the peer
    # (caller_in_room records the conversation; caller_leg_ended the hang-up before it).
    session.commit()
    session.refresh(attempt)
    return "human"


def caller_may_join(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> bool:
    """After the greeting: True while the peer is still in the room; else the peer left during it.

    A peer who left before the caller got in is the line's failure, not the caller's: the attempt
    ends ``peer_left`` (so another peer is offered it first) and the callback goes back in line at
    once, its place and its count of tries unchanged.
    """
    session.refresh(attempt)
    if attempt.stage == "connected":
        if attempt.caller_joined_at is None:
            # Kept: from now on the caller is with their peer (a peer who leaves leaves them, not an empty room).
            attempt.caller_joined_at = now
            session.commit()
        return True
    cb = session.get(CallbackRequest, attempt.callback_id)
    if cb is not None and cb.status == "dialing" and cb.peer_id == attempt.peer_id and attempt.outcome == "connected":
        attempt.outcome = "peer_left"
        session.commit()
        _back_in_line(session, cb, now)
        _wake(svc, cb)
        log.info("callback %s: the peer left during the caller's greeting (attempt %s)", cb.id, attempt.id)
    return False


def caller_confirms(session: Session, svc: Services, attempt: CallbackAttempt, pressed: bool, now: datetime) -> str:
    """After an ``unknown`` answer: a key is a person (``human``); no key is treated as a machine (``machine``)."""
    if pressed:
        return caller_answers(session, svc, attempt, attempt.answered_by, now, pressed_key=True)
    return MACHINE if caller_not_reached(session, svc, attempt, "no_key", now) else "gone"


def caller_in_room(session: Session, attempt: CallbackAttempt, now: datetime) -> None:
    """The caller's <Dial> into the room ended: they were in it with the peer, so the callback is completed."""
    complete(session, attempt, now)


def complete(session: Session, attempt: CallbackAttempt, now: datetime) -> None:
    """The caller talked with the peer on this attempt: the callback is completed (once; never missed after)."""
    cb = session.get(CallbackRequest, attempt.callback_id)
    if cb is None or attempt.answered_by is None or is_machine(attempt.answered_by):
        return
    done = session.execute(update(CallbackRequest)
                           .where(CallbackRequest.id == cb.id, CallbackRequest.status == "dialing")
                           .values(status="completed", outcome="connected", attempts=attempt.number, updated_at=now))
    session.commit()
    if rowcount(done):
        session.refresh(cb)


def caller_leg_ended(session: Session, svc: Services, attempt: CallbackAttempt, call_status: str,
                     now: datetime) -> None:
    """Final status of the caller's leg: not reached (retry), or the end of a connected call."""
    if attempt.stage == "caller_ringing":
        caller_not_reached(session, svc, attempt, CALLER_FAILURES.get(call_status, "failed"), now)
        return
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    session.refresh(cb)
    if cb.status == "dialing" and cb.peer_id == attempt.peer_id and attempt.answered_by is not None \
            and (attempt.stage == "connected" or attempt.outcome == "connected"):
        # Answered, but their <Dial> into the room never ended (caller_in_room): they hung up at the
        # greeting. Not completed: tried again on the schedule, and the peer waiting in the room is told.
        _caller_left_before_room(session, svc, attempt, cb, now)
    elif attempt.stage == "connected":
        _end_attempt(session, attempt, "connected", now, stages=("connected",))


def _caller_left_before_room(session: Session, svc: Services, attempt: CallbackAttempt, cb: CallbackRequest,
                             now: datetime) -> None:
    if attempt.stage == "connected":
        if not caller_not_reached(session, svc, attempt, "caller_left", now):
            return
    else:  # the peer's leg ended first (it recorded "connected"): correct the outcome, retry
        attempt.outcome = "caller_left"
        cb.attempts = attempt.number
        when = next_try(svc.settings, cb, now)
        cb.outcome, cb.updated_at, cb.peer_id = "caller_left", now, None
        cb.status, cb.due_at = ("pending", when) if when is not None else ("missed", cb.due_at)
        session.commit()
        if when is not None:
            _wake(svc, cb)
    log.info("callback %s: the caller hung up before the room (attempt %s)", cb.id, attempt.id)


def caller_leg_status(session: Session, svc: Services, attempt: CallbackAttempt, call_status: str,
                      now: datetime) -> None:
    """Status callback of the caller's leg: only a final status matters (no answer or busy means a retry)."""
    if call_status in FINAL_CALL_STATUSES:
        caller_leg_ended(session, svc, attempt, call_status, now)


def peer_leg_ended(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> bool:
    """Final status of the peer's leg: free the peer (wrap-up after a real call); the line offers them next.

    Returns True when the peer's call ended while they were out of the room in their in-call menu,
    so they leave a caller they were talking with (the callback is completed; the caller must not
    be left alone in the room: :func:`callflows.line.callback_peer_leg_ended` sees to that).
    """
    left_caller = False
    cb = session.get(CallbackRequest, attempt.callback_id)
    assert cb is not None
    if attempt.stage in ("peer_ringing", "peer_answered"):
        # The peer did not take it: not the caller's fault, so no attempt is used up.
        if _end_attempt(session, attempt, "peer_no_answer", now, stages=("peer_ringing", "peer_answered")):
            _back_in_line(session, cb, now)
    elif attempt.stage == "caller_ringing":
        # The peer hung up while the caller's phone rang: stop that call, put the callback back in line.
        if _end_attempt(session, attempt, "peer_left", now, stages=("caller_ringing",)):
            if attempt.caller_call_sid:
                try:
                    svc.twilio.update_call(attempt.caller_call_sid, status="canceled")
                except TwilioGatewayError:  # network failures included
                    log.info("caller leg of attempt %s already ended", attempt.id)
            _back_in_line(session, cb, now)
    elif attempt.stage == "connected":
        if _end_attempt(session, attempt, "connected", now, stages=("connected",)):
            # A peer who hangs up in the room is seen by their Dial's action first (peer_hung_up_in_room),
            # so a leg ending here was out of the room: in the in-call menu (they had met the caller), or
            # never in it with them (the line dropped on the way).
            if attempt.peer_stepped_out_at is not None:
                complete(session, attempt, now)
                left_caller = True
            else:
                _caller_alone(session, svc, attempt, cb)
    _free_peer(session, svc, attempt, now)
    return left_caller


def peer_hung_up_in_room(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> bool:
    """The peer hung up in the room (their Dial's action): True when they leave a caller they were talking with.

    The peer's <Conference> does not end the room (the caller stays with a crisis counselor, and
    is never dropped while the peer is in their menu), so the peer's leaving is seen here: the
    attempt ends ``connected``, the callback is completed (the caller talked) and the peer goes
    to wrap-up; :func:`callflows.line.callback_peer_left_caller` then makes sure the caller is not
    left alone. A peer who leaves before the caller got in is left to their status callback,
    which puts the callback back in line.
    """
    if attempt.stage != "connected" or attempt.caller_joined_at is None:
        return False
    if not _end_attempt(session, attempt, "connected", now, stages=("connected",)):
        return False
    complete(session, attempt, now)
    _free_peer(session, svc, attempt, now)
    return True


def _free_peer(session: Session, svc: Services, attempt: CallbackAttempt, now: datetime) -> None:
    """The peer's side of an ended attempt: wrap-up after a call they took, else free (a miss counted)."""
    peer = session.get(Peer, attempt.peer_id) if attempt.peer_id else None
    if peer is not None and peer.status == "busy":
        if attempt.outcome in ("connected", "caller_left"):  # they took the call: wrap-up
            start_wrap_up(session, svc, peer, now)
        else:
            release_peer(session, peer, now)
            session.commit()
            if attempt.outcome == "peer_no_answer":
                offer_missed(session, svc, peer, now)


def _caller_alone(session: Session, svc: Services, attempt: CallbackAttempt, cb: CallbackRequest) -> None:
    """The peer left before the caller was recorded in the room: a caller already in it is alone there.

    (The peer never met them: a room still up now holds the caller only.) They are moved to
    :func:`caller_may_join`, which tells them and puts the callback back in line.
    A caller still hearing the greeting gets there by themselves.
    """
    session.refresh(cb)
    if cb.status != "dialing" or not attempt.caller_call_sid:
        return
    try:
        if svc.twilio.conference_sid(room_name(attempt.id)) is None:
            return
        svc.twilio.update_call(attempt.caller_call_sid, url=svc.public_url("callbacks.caller_join", attempt_id=attempt.id),
                               method="POST")
    except TwilioGatewayError:  # the caller's call is over too, or Twilio cannot say
        log.info("caller of attempt %s not moved", attempt.id)


# Upkeep ------------------------------------------------------------------------------------


def expire_and_recover(session: Session, svc: Services, now: datetime) -> dict[str, list[int]]:
    """Close windows that passed, and recover attempts Twilio never reported on (a killed worker)."""
    missed = []
    for cb in session.scalars(select(CallbackRequest).where(CallbackRequest.status == "pending",
                                                            CallbackRequest.not_after <= now)):
        cb.status, cb.outcome, cb.updated_at = "missed", cb.outcome or "window_closed", now
        missed.append(cb.id)
    session.commit()
    recovered = []
    stale = session.scalars(select(CallbackAttempt).where(CallbackAttempt.stage.in_(("peer_ringing",)),
                                                          CallbackAttempt.peer_call_sid.is_(None),
                                                          CallbackAttempt.started_at <= now - STALE_ATTEMPT)).all()
    for attempt in stale:
        if _end_attempt(session, attempt, "lost", now, stages=("peer_ringing",)):
            lost = session.get(CallbackRequest, attempt.callback_id)
            assert lost is not None
            # Counted as a try: if Twilio did place that call, the next one follows the retry schedule.
            lost.attempts = attempt.number
            when = next_try(svc.settings, lost, now)
            lost.status, lost.due_at, lost.peer_id = ("pending", when, None) if when else ("missed", lost.due_at, None)
            peer = session.get(Peer, attempt.peer_id) if attempt.peer_id else None
            if peer is not None:
                release_peer(session, peer, now)
            session.commit()
            recovered.append(lost.id)
    return {"missed": missed, "recovered": recovered}
