"""Caller plans, daily limits and blocks, always by pseudonym (never by showing a number).

- A **plan** (:class:`models.CallerPlan`) is a supervisor's short care plan or alert, encrypted
  at rest, shown on the page of the peer who accepts the caller; the whisper only cues it.
- A **daily limit** counts the caller's calls that reached a peer in the line's local day,
  with the California warm-line semantics: a call dropped and redialled within
  :data:`REDIAL_GRACE` of the last one ending counts once (and is let through); asking for, or
  being offered, a callback never counts (only calls that reached a peer do); the crisis key
  is never limited (it is answered before any of this runs).
- A **block** is for abuse only, with a reason (encrypted) and an expiry. A blocked caller is
  never met with silence: they hear that calls cannot reach a peer for now, and keep the
  stories and the crisis line.

Every change is audit-logged in the same commit.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from callflows.calls import caller_for_call
from callflows.settings import Settings
from callflows.times import aware
from models import AuditEntry, Call, CallbackRequest, Caller, CallerBlock, CallerPlan
from models.crypto import Vault
from models.tables import CallbackAttempt, PeerRequest

# A call that reaches a peer within this long after the caller's last one ended is the same call.
REDIAL_GRACE = timedelta(minutes=10)
PLAN_CHARS = 500
# What a caller may do when asking for a peer: in this order of precedence.
ACCESS = ("blocked", "limit", "ok")


PLAN_VISIBLE_AFTER = timedelta(minutes=30)  # the accepting peer sees the plan during the call and its wrap-up


def current_caller_of_peer(session: Session, peer_id: int, now: datetime) -> tuple[int | None, bool]:
    """The caller this peer is with (live: True) or was with in the last PLAN_VISIBLE_AFTER, live call or callback."""
    recent = session.scalars(select(PeerRequest).where(
        PeerRequest.peer_id == peer_id, PeerRequest.connected_at.is_not(None),
        or_(PeerRequest.status == "connected", PeerRequest.ended_at > now - PLAN_VISIBLE_AFTER))
        .order_by(PeerRequest.connected_at.desc()).limit(1)).first()
    attempt = session.scalars(select(CallbackAttempt).where(
        CallbackAttempt.peer_id == peer_id,
        or_(CallbackAttempt.stage == "connected",
            (CallbackAttempt.outcome == "connected") & (CallbackAttempt.ended_at > now - PLAN_VISIBLE_AFTER)))
        .order_by(CallbackAttempt.started_at.desc()).limit(1)).first()
    live_at = aware(recent.connected_at) if recent is not None else None
    if attempt is not None and (live_at is None or (aware(attempt.started_at) or now) > live_at):
        cb = session.get(CallbackRequest, attempt.callback_id)
        return (cb.caller_id if cb is not None else None), attempt.stage == "connected"
    if recent is not None and recent.call_id is not None:
        call = session.get(Call, recent.call_id)
        return (call.caller_id if call is not None else None), recent.status == "connected"
    return None, False


def pseudonym(vault: Vault, caller_id: int) -> str:
    """The caller's pseudonym (as in the research export): ``C-1a2b3c4d5e``."""
    return vault.pseudonym("caller", caller_id)


def caller_by_pseudonym(session: Session, vault: Vault, name: str) -> Caller | None:
    """The caller with this pseudonym, if any (compared over every caller: pseudonyms are keyed hashes)."""
    name = name.strip()
    for caller in session.scalars(select(Caller)):
        if pseudonym(vault, caller.id) == name:
            return caller
    return None


def plan_of(session: Session, caller_id: int) -> CallerPlan | None:
    """The caller's plan row (text and/or limit), if any."""
    return session.scalar(select(CallerPlan).where(CallerPlan.caller_id == caller_id))


def plan_text(vault: Vault, plan: CallerPlan | None) -> str | None:
    """The plan's text, decrypted (None when there is none)."""
    if plan is None or plan.plan_encrypted is None:
        return None
    return vault.decrypt_text(plan.plan_encrypted)


def active_block(session: Session, caller_id: int, now: datetime) -> CallerBlock | None:
    """The block in force for this caller at ``now``, if any (the one ending last)."""
    blocks = session.scalars(select(CallerBlock).where(CallerBlock.caller_id == caller_id,
                                                       CallerBlock.lifted_at.is_(None)))
    live = [b for b in blocks if (aware(b.expires_at) or now) > now]
    return max(live, key=lambda b: aware(b.expires_at) or now) if live else None


@dataclass(frozen=True)
class Reached:
    """One call of a caller that reached a peer: when it connected and when it ended (None: still on)."""

    connected_at: datetime
    ended_at: datetime | None


def _reached(session: Session, caller_id: int, since: datetime) -> list[Reached]:
    rows = session.execute(
        select(PeerRequest.connected_at, PeerRequest.ended_at)
        .join(Call, Call.id == PeerRequest.call_id)
        .where(Call.caller_id == caller_id, PeerRequest.connected_at.is_not(None), PeerRequest.connected_at >= since)
        .order_by(PeerRequest.connected_at))
    return [Reached(aware(c), aware(e)) for c, e in rows if c is not None]  # type: ignore[arg-type]


def count_calls(reached: list[Reached], now: datetime) -> int:
    """Calls that count toward a limit: one reaching a peer within REDIAL_GRACE of the last one's end is the same call."""
    count = 0
    last_end: datetime | None = None
    for call in reached:
        if last_end is None or call.connected_at - last_end > REDIAL_GRACE:
            count += 1
        last_end = max(last_end or call.connected_at, call.ended_at or now)
    return count


def local_day_start(settings: Settings, now: datetime) -> datetime:
    """Midnight of today in the line's time zone, as an aware UTC datetime."""
    local = now.astimezone(settings.zone)
    # In UTC, as the times it is compared with are stored: SQLite keeps a bound datetime's wall
    # clock and drops its zone, so local midnight would be read as midnight UTC.
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)


def calls_today(session: Session, settings: Settings, caller_id: int, now: datetime) -> int:
    """How many of today's calls (local day) count toward the caller's limit."""
    return count_calls(_reached(session, caller_id, local_day_start(settings, now)), now)


def over_limit(session: Session, settings: Settings, caller_id: int, now: datetime) -> bool:
    """True when the caller has used today's calls with a peer; a redial within REDIAL_GRACE still goes through."""
    plan = plan_of(session, caller_id)
    if plan is None or plan.daily_limit is None:
        return False
    reached = _reached(session, caller_id, local_day_start(settings, now))
    if count_calls(reached, now) < plan.daily_limit:
        return False
    last = reached[-1] if reached else None
    # A dropped call redialled at once is the same call: it counts once and is let through.
    return not (last is not None and now - (last.ended_at or now) <= REDIAL_GRACE)


def access(session: Session, settings: Settings, call_sid: str, now: datetime) -> str:
    """Whether this call's caller may be put through to a peer: ``ok``, ``blocked`` or ``limit``."""
    caller = caller_for_call(session, call_sid)
    if caller is None or caller.id is None:
        return "ok"  # a hidden number has no plan, limit or block
    if active_block(session, caller.id, now) is not None:
        return "blocked"
    if over_limit(session, settings, caller.id, now):
        return "limit"
    return "ok"


def has_plan(session: Session, caller_id: int | None) -> bool:
    """True when this caller has a plan text (the whisper cues the peer to their page)."""
    plan = plan_of(session, caller_id) if caller_id is not None else None
    return plan is not None and plan.plan_encrypted is not None


def has_plan_for_call(session: Session, call_id: int | None) -> bool:
    """True when the caller of this call has a plan text (the whisper cues the peer to their page)."""
    if call_id is None:
        return False
    call = session.get(Call, call_id)
    return call is not None and has_plan(session, call.caller_id)


# Changes (audit-logged) ---------------------------------------------------------------------


def _audit(session: Session, user_id: int | None, action: str, caller_id: int, detail: str) -> None:
    session.add(AuditEntry(staff_user_id=user_id, action=action, target_type="caller", target_id=caller_id,
                           detail=detail[:500]))


def set_plan(session: Session, vault: Vault, caller_id: int, text: str | None, daily_limit: int | None,
             user_id: int | None, now: datetime) -> CallerPlan:
    """Set (or clear, with empty text and no limit) a caller's plan and daily limit."""
    if daily_limit is not None and daily_limit < 1:
        raise ValueError("a daily limit is at least 1 call")
    text = (text or "").strip()[:PLAN_CHARS] or None
    plan = plan_of(session, caller_id)
    if plan is None:
        plan = CallerPlan(caller_id=caller_id)
        session.add(plan)
    plan.plan_encrypted = vault.encrypt_text(text) if text else None
    plan.daily_limit = daily_limit
    plan.updated_at = now
    plan.updated_by_id = user_id
    # The audit entry says what changed, never the plan's words.
    _audit(session, user_id, "caller_plan", caller_id,
           f"plan {'set' if text else 'cleared'}; daily limit {daily_limit if daily_limit else 'none'}")
    session.commit()
    return plan


def block(session: Session, vault: Vault, caller_id: int, reason: str, expires_at: datetime,
          user_id: int | None, now: datetime) -> CallerBlock:
    """Block a caller for abuse until ``expires_at`` (a reason is required)."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a block needs a reason")
    if expires_at <= now:
        raise ValueError("a block must expire in the future")
    row = CallerBlock(caller_id=caller_id, reason_encrypted=vault.encrypt_text(reason[:500]), created_at=now,
                      expires_at=expires_at, created_by_id=user_id)
    session.add(row)
    session.flush()
    _audit(session, user_id, "caller_blocked", caller_id, f"block {row.id} until {expires_at.isoformat()}")
    session.commit()
    return row


def lift_block(session: Session, block_id: int, user_id: int | None, now: datetime) -> bool:
    """Lift a block before it expires; False when there is no such block in force."""
    row = session.get(CallerBlock, block_id)
    if row is None or row.lifted_at is not None:
        return False
    row.lifted_at = now
    _audit(session, user_id, "caller_unblocked", row.caller_id, f"block {row.id} lifted")
    session.commit()
    return True
