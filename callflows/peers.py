"""Peers and their state: who is on shift, who is free, the atomic claim, wrap-up, sign-in by phone.

Functions take a SQLAlchemy session, the process's :class:`~callflows.services.Services`
and ``now``, so tests drive the clock. A peer's own status changes, and the events that free
a peer and offer them to the line, are in :mod:`callflows.line`.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple, cast

from sqlalchemy import Row, Table, and_, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from callflows.errors import SchedulingError
from callflows.sql import changed_by_core, core, rowcount
from callflows.services import Services
from callflows.times import aware
from models import AuditEntry, Peer, PeerStatusChange
from models.crypto import Vault
from models.tables import RingLeg

log = logging.getLogger(__name__)

ON_SHIFT = ("available", "busy", "wrap_up", "break")
# The statuses a peer sets themselves (by phone or on the staff page); "busy" and "wrap_up"
# are set by the calls.
SELF_STATUSES = ("available", "break", "signed_off")
LIVE_LEGS = ("ringing", "answered")
MAX_PIN_FAILURES = 5
PIN_LOCK = timedelta(minutes=15)


def peers_on_shift(session: Session, language: str) -> int:
    """How many peers who speak ``language`` are signed on (available, busy, wrap-up or break)."""
    peers = session.scalars(select(Peer).where(Peer.active.is_(True), Peer.status.in_(ON_SHIFT)))
    return sum(1 for p in peers if language in (p.languages or []))


def anyone_available(session: Session) -> bool:
    """True when at least one peer is free to be rung."""
    return bool(session.scalar(select(func.count()).select_from(Peer)
                               .where(Peer.status == "available", Peer.active.is_(True), Peer.line_call_sid.is_(None))))


class FreePeer(NamedTuple):
    """What the line needs of a free peer to choose and ring them (read as plain columns, not ORM objects)."""

    id: int
    display_name: str
    languages: list[str] | None
    tags: list[str] | None
    status_changed_at: datetime | None
    last_call_ended_at: datetime | None
    phone_encrypted: bytes


PEERS, STATUS_CHANGES = cast(Table, Peer.__table__), cast(Table, PeerStatusChange.__table__)
# Free to be rung now: available, active, not on their own call with the line. Plain Core
# (compiled once, no ORM loading): dispatch reads it whenever a peer may have come free.
FREE_PEERS = (select(*(PEERS.c[name] for name in FreePeer._fields))
              .where(PEERS.c.active.is_(True), PEERS.c.status == "available", PEERS.c.line_call_sid.is_(None)))


# A wrap-up over by the clock: the reconciler's release ends these, and a hold round asks whether any
# exists before running it. ``due`` is :func:`wrap_up_due`; a bind typed as the column.
WRAP_UP_OVER = and_(PEERS.c.status == "wrap_up",
                    PEERS.c.status_changed_at <= bindparam("due", type_=PEERS.c.status_changed_at.type))


def wrap_up_due(svc: Services, now: datetime) -> datetime:
    """A wrap-up that began at or before this moment is over by the clock."""
    return now - timedelta(seconds=svc.settings.peer_wrapup_seconds)


def free_peer(row: Row[Any]) -> FreePeer:
    """A row that begins with :data:`FREE_PEERS`' columns, as a :class:`FreePeer`."""
    return FreePeer._make(row[:len(FreePeer._fields)])


def _idle_key(peer: FreePeer) -> tuple[int, datetime, int]:
    # Longest idle first: never called yet, then the oldest end of last call; ties by
    # the time they became available, then id for a stable order.
    ended = aware(peer.last_call_ended_at)
    changed = aware(peer.status_changed_at) or datetime.min.replace(tzinfo=timezone.utc)
    return (0 if ended is None else 1, ended or changed, peer.id)


def free_peers(session: Session) -> list[FreePeer]:
    """Every peer free to be rung now (available, active, not on their own call with the line)."""
    return [free_peer(row) for row in core(session).execute(FREE_PEERS)]


def pick_peers(session: Session, language: str, tag: str | None, limit: int,
               exclude: set[int] | frozenset[int] = frozenset()) -> list[FreePeer]:
    """Available peers for a caller: language match, wanted lived experience first (else any)."""
    return choose_peers(free_peers(session), language, tag, limit, exclude)


def choose_peers(free: list[FreePeer], language: str, tag: str | None, limit: int,
                 exclude: set[int] | frozenset[int] = frozenset()) -> list[FreePeer]:
    """Of the ``free`` peers, those to ring for a caller: language match, wanted lived experience first, longest idle first."""
    candidates = [p for p in free if language in (p.languages or []) and p.id not in exclude]
    if tag:
        tagged = [p for p in candidates if tag in (p.tags or [])]
        # Fallback to any peer only when nobody with that experience is free.
        candidates = tagged or candidates
    return sorted(candidates, key=_idle_key)[:limit]


def note_status(session: Session, peer_id: int, status: str, now: datetime) -> None:
    """Keep a peer's status change for the metrics (occupancy, after-call work); committed with the change."""
    session.add(PeerStatusChange(peer_id=peer_id, status=status, at=now))


# Binds typed as their columns: SQLite keeps a time as text, which must be written one way.
_NOW = bindparam("now", type_=PEERS.c.status_changed_at.type)
_CLAIM = (update(PEERS).where(PEERS.c.id == bindparam("peer_id"), PEERS.c.status == "available")
          .values(status="busy", status_changed_at=_NOW))
_NOTE = insert(STATUS_CHANGES).values(peer_id=bindparam("peer_id"), status=bindparam("status"), at=_NOW)


def note_statuses(session: Session, changes: list[tuple[int, str]], now: datetime) -> None:
    """Keep these (peer id, status) changes for the metrics, as one Core INSERT; committed with the changes."""
    if changes:
        core(session).execute(_NOTE, [{"peer_id": peer_id, "status": status, "now": now} for peer_id, status in changes])


def claim_peer(session: Session, peer_id: int, now: datetime) -> bool:
    """Atomically move an available peer to busy (one UPDATE; False if someone got there first)."""
    conn = core(session)
    claimed = rowcount(conn.execute(_CLAIM, {"peer_id": peer_id, "now": now})) == 1
    if claimed:
        note_statuses(session, [(peer_id, "busy")], now)
        changed_by_core(session, Peer, peer_id)
    return claimed


def has_live_call(session: Session, peer_id: int) -> bool:
    """True while one of the peer's legs rings, plays its whisper or carries a call."""
    return bool(session.scalar(
        select(func.count()).select_from(RingLeg)
        .where(RingLeg.peer_id == peer_id, RingLeg.status.in_((*LIVE_LEGS, "accepted")))
    ))


def release_peer(session: Session, peer: Peer, now: datetime) -> None:
    """A peer who was rung but did not take the call is available again (it was not a call)."""
    if peer.status == "busy" and not has_live_call(session, peer.id):
        peer.status = "available" if peer.active else "signed_off"
        peer.status_changed_at = now
        note_status(session, peer.id, peer.status, now)


def offer_missed(session: Session, svc: Services, peer: Peer, now: datetime) -> bool:
    """The peer's phone did not take an offer (no answer, busy, no key): N in a row put them on a break.

    The break is audit-logged; the peer hears why on their next call to the line and sees it on
    their page. Returns True when this miss put them on a break.
    """
    peer.missed_offers = (peer.missed_offers or 0) + 1
    limit = svc.settings.peer_missed_offers_break
    if not limit or peer.missed_offers < limit or peer.status != "available":
        session.commit()
        return False
    peer.status = "break"
    peer.status_changed_at = now
    peer.auto_break_at = now
    session.add(AuditEntry(at=now, action="peer_auto_break", target_type="peer", target_id=peer.id,
                           detail=f"available -> break: {peer.missed_offers} offers in a row not taken"))
    peer.missed_offers = 0
    session.commit()
    log.info("peer %s put on a break after %s missed offers", peer.id, limit)
    return True


def offer_taken(session: Session, peer_id: int) -> None:
    """The peer took an offer (pressed 1): the count of missed offers starts again."""
    peer = session.get(Peer, peer_id)
    if peer is not None and peer.missed_offers:
        peer.missed_offers = 0
        session.commit()


def start_wrap_up(session: Session, svc: Services, peer: Peer, now: datetime) -> None:
    """After a call (live or callback): wrap-up time, then available again.

    Two things end a wrap-up, on purpose: a job scheduled here for when it is over, and the
    reconciler (:func:`callflows.line.reconcile`, run on every hold poll and every minute),
    which frees any peer whose wrap-up is over by the clock, so a lost job never strands one.
    """
    peer.status = "wrap_up"
    peer.status_changed_at = now
    note_status(session, peer.id, "wrap_up", now)
    peer.last_call_ended_at = now
    peer.calls_in_a_row = (peer.calls_in_a_row or 0) + 1
    session.commit()
    try:
        svc.jobs.wrap_up_ends(peer.id, now.timestamp(), timedelta(seconds=svc.settings.peer_wrapup_seconds))
    except SchedulingError as exc:
        log.warning("could not schedule wrap-up end for peer %s (the reconciler will free them): %s", peer.id, exc)


# Sign-in by phone -----------------------------------------------------------------------


def on_line_call(session: Session, peer: Peer, call_sid: str) -> None:
    """The peer is on a call with the line (signing on by phone): never rung until it ends (its status callback)."""
    if call_sid and peer.line_call_sid != call_sid:
        peer.line_call_sid = call_sid
        session.commit()


def peer_for_number(session: Session, vault: Vault, number: str | None) -> Peer | None:
    """The active peer whose registered phone this is, if any."""
    if not number:
        return None
    return session.scalar(select(Peer).where(Peer.phone_hash == vault.lookup_hash(number), Peer.active.is_(True)))


@dataclass(frozen=True)
class SignIn:
    """The answer to a PIN: ``ok``, ``wrong`` (try again) or ``locked`` (for ``minutes``)."""

    outcome: str
    minutes: int = 0


def locked_minutes(peer: Peer | None, now: datetime) -> int:
    """Minutes left on a peer's PIN lock (0 when not locked)."""
    until = aware(peer.pin_locked_until) if peer is not None else None
    if until is None or until <= now:
        return 0
    return max(1, int((until - now).total_seconds() // 60) + 1)


def sign_in(session: Session, peer: Peer | None, pin_ok: bool, now: datetime) -> SignIn:
    """Count a PIN attempt: too many wrong PINs in a row lock sign-in for a while."""
    minutes = locked_minutes(peer, now)
    if minutes:
        return SignIn("locked", minutes)
    if peer is None or not peer.active or not pin_ok:
        if peer is not None:
            peer.pin_failures = (peer.pin_failures or 0) + 1
            if peer.pin_failures >= MAX_PIN_FAILURES:
                peer.pin_failures = 0
                peer.pin_locked_until = now + PIN_LOCK
                session.commit()
                return SignIn("locked", int(PIN_LOCK.total_seconds() // 60))
            session.commit()
        return SignIn("wrong")
    peer.pin_failures = 0
    peer.pin_locked_until = None
    session.commit()
    return SignIn("ok")
