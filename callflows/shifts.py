"""Shifts: weekly templates, dated shifts for the weeks ahead, sign-ups within the supervisor's
rules, gaps, and an SMS when a shift's peers have not signed in.

- A template (:class:`models.ShiftTemplate`) is a weekday and local start and end minute in
  ``LINE_TIMEZONE`` (an end at or before the start is the next day), the peers needed, the
  languages it covers, and whether it is an on-call (backup) shift.
- :func:`ensure_shifts` makes the dated shifts (UTC) for the next :data:`HORIZON_DAYS` days,
  once each (a unique template + start), so daylight saving is resolved per date.
- Peers sign up and drop themselves (:func:`sign_up`, :func:`drop`) within the rules
  (:class:`models.ShiftRules`): a shift not full and not over, a language the peer speaks,
  at most N shifts a week, and dropping only some hours ahead. Being signed in outside a shift
  is always allowed: shifts never gate a peer's status.
- :func:`alert_unstaffed` (from the periodic tick) texts the on-call peer, else
  ``SUPERVISOR_NUMBER``, once per shift, when none of its peers signed in
  :data:`ALERT_AFTER` after it started. It marks the shift first and commits before Twilio is
  asked, so a retried tick never texts twice.
- Who is on call now (:func:`on_call_now`) is whoever is signed up to an on-call shift that
  covers the moment. Those whose staff login has a supervisor's role are the on-call
  supervisors (:func:`on_call_supervisors`): a peer's "ask the supervisor" in a call rings them
  before ``SUPERVISOR_NUMBER``. A plain on-call peer is not rung for that, because whoever
  answers joins the call as its coach, which only supervisors may do.

Every change is audit-logged in the same commit.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callflows.errors import TwilioGatewayError
from callflows.hours import MINUTES_PER_DAY, hhmm, local_moment
from callflows.loader import Flow
from callflows.peers import ON_SHIFT
from callflows.services import Services
from callflows.sql import rowcount
from callflows.times import aware
from models import AuditEntry, DecryptError, Peer, Shift, ShiftRules, ShiftSignup, ShiftTemplate, StaffUser
from models.crypto import Vault
from models.tables import SUPERVISOR_ROLES

log = logging.getLogger(__name__)

HORIZON_DAYS = 14
ALERT_AFTER = timedelta(minutes=5)
# A shift that started longer ago than this is history: no alert for it any more.
ALERT_WINDOW = timedelta(hours=2)


class ShiftRuleError(ValueError):
    """A sign-up or drop the supervisor's rules do not allow (the message says why, for the peer)."""


def rules(session: Session) -> ShiftRules:
    """The supervisor's rules (the defaults until they set some)."""
    row = session.scalar(select(ShiftRules).order_by(ShiftRules.id).limit(1))
    return row if row is not None else ShiftRules(max_shifts_per_week=5, drop_notice_hours=24)


def _audit(session: Session, user_id: int | None, action: str, target_type: str, target_id: int | None,
           detail: str) -> None:
    session.add(AuditEntry(staff_user_id=user_id, action=action, target_type=target_type, target_id=target_id,
                           detail=detail[:500]))


def set_rules(session: Session, max_shifts_per_week: int, drop_notice_hours: int, user_id: int | None,
              now: datetime) -> ShiftRules:
    """Change the sign-up rules."""
    if max_shifts_per_week < 1 or drop_notice_hours < 0:
        raise ValueError("at least 1 shift a week, and a notice of 0 hours or more")
    row = session.scalar(select(ShiftRules).order_by(ShiftRules.id).limit(1))
    if row is None:
        row = ShiftRules()
        session.add(row)
    row.max_shifts_per_week = max_shifts_per_week
    row.drop_notice_hours = drop_notice_hours
    row.updated_at = now
    _audit(session, user_id, "shift_rules", "shift_rules", None,
           f"max {max_shifts_per_week} a week; drop {drop_notice_hours} h ahead")
    session.commit()
    return row


def template_label(t: ShiftTemplate, language_names: Mapping[str, str] | None = None) -> str:
    """``Monday 09:00-13:00, 2 peers, en/es`` (+ on call); ``English/Spanish`` with the languages' names."""
    weekdays = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    nxt = " (+1 day)" if t.end_minute <= t.start_minute else ""
    kind = " on call" if t.on_call else ""
    return (f"{weekdays[t.weekday]} {hhmm(t.start_minute)}-{hhmm(t.end_minute)}{nxt}, {t.peers_needed} "
            f"peer{'s' if t.peers_needed != 1 else ''}, "
            f"{'/'.join((language_names or {}).get(code, code) for code in t.languages or [])}{kind}")


def add_template(session: Session, weekday: int, start_minute: int, end_minute: int, peers_needed: int,
                 languages: list[str], on_call: bool, user_id: int | None) -> ShiftTemplate:
    """Add a weekly recurring shift."""
    if not (0 <= weekday <= 6 and 0 <= start_minute < MINUTES_PER_DAY and 0 <= end_minute <= MINUTES_PER_DAY):
        raise ValueError("a weekday 0-6 and times of day")
    if peers_needed < 1 or not languages:
        raise ValueError("at least one peer and one language")
    template = ShiftTemplate(weekday=weekday, start_minute=start_minute, end_minute=end_minute,
                             peers_needed=peers_needed, languages=languages, on_call=on_call)
    session.add(template)
    session.flush()
    _audit(session, user_id, "shift_template_added", "shift_template", template.id, template_label(template))
    session.commit()
    return template


def retire_template(session: Session, template_id: int, user_id: int | None, now: datetime) -> bool:
    """Stop a template: its future shifts without sign-ups go; those with sign-ups stay (the peers are told by staff)."""
    template = session.get(ShiftTemplate, template_id)
    if template is None or not template.active:
        return False
    template.active = False
    for shift in session.scalars(select(Shift).where(Shift.template_id == template_id, Shift.starts_at > now)):
        if not session.scalar(select(func.count()).select_from(ShiftSignup).where(ShiftSignup.shift_id == shift.id)):
            session.delete(shift)
    _audit(session, user_id, "shift_template_retired", "shift_template", template.id, template_label(template))
    session.commit()
    return True


def ensure_shifts(session: Session, zone: ZoneInfo, now: datetime, days: int = HORIZON_DAYS) -> int:
    """Make the dated shifts of every active template for the next ``days`` days; returns how many were new."""
    today = now.astimezone(zone).date()
    made = 0
    templates = session.scalars(select(ShiftTemplate).where(ShiftTemplate.active.is_(True))).all()
    for template in templates:
        for offset in range(-1, days + 1):
            day = today + timedelta(days=offset)
            if day.weekday() != template.weekday:
                continue
            end = template.end_minute + (MINUTES_PER_DAY if template.end_minute <= template.start_minute else 0)
            starts = local_moment(day, template.start_minute, zone)
            ends = local_moment(day, end, zone)
            if ends <= now:
                continue
            exists = session.scalar(select(Shift.id).where(Shift.template_id == template.id,
                                                           Shift.starts_at == starts))
            if exists is not None:
                continue
            session.add(Shift(template_id=template.id, starts_at=starts, ends_at=ends,
                              peers_needed=template.peers_needed, languages=list(template.languages or []),
                              on_call=template.on_call))
            try:
                session.commit()
            except IntegrityError:  # another process made it a moment ago
                session.rollback()
                continue
            made += 1
    return made


def signups(session: Session, shift_id: int) -> list[int]:
    """Ids of the peers signed up for a shift."""
    return list(session.scalars(select(ShiftSignup.peer_id).where(ShiftSignup.shift_id == shift_id)))


@dataclass(frozen=True)
class ShiftView:
    """A shift with who is on it, for the pages."""

    shift: Shift
    peer_ids: tuple[int, ...]

    @property
    def missing(self) -> int:
        """Peers still needed."""
        return max(0, self.shift.peers_needed - len(self.peer_ids))


def upcoming(session: Session, now: datetime, days: int = HORIZON_DAYS) -> list[ShiftView]:
    """Shifts not over yet, in the next ``days`` days, in order, with their peers."""
    rows = session.scalars(select(Shift).where(Shift.ends_at > now, Shift.starts_at < now + timedelta(days=days))
                           .order_by(Shift.starts_at, Shift.id)).all()
    by_shift: dict[int, list[int]] = {}
    if rows:
        for shift_id, peer_id in session.execute(select(ShiftSignup.shift_id, ShiftSignup.peer_id)
                                                 .where(ShiftSignup.shift_id.in_([s.id for s in rows]))):
            by_shift.setdefault(shift_id, []).append(peer_id)
    return [ShiftView(s, tuple(by_shift.get(s.id, []))) for s in rows]


def gaps(session: Session, now: datetime, days: int = HORIZON_DAYS) -> list[ShiftView]:
    """Shifts in the next ``days`` days with fewer peers than needed."""
    return [v for v in upcoming(session, now, days) if v.missing]


def _week_of(moment: datetime, zone: ZoneInfo) -> tuple[int, int]:
    iso = moment.astimezone(zone).isocalendar()
    return iso[0], iso[1]


def sign_up(session: Session, peer: Peer, shift: Shift, zone: ZoneInfo, user_id: int | None, now: datetime) -> None:
    """Sign a peer up for a shift, within the rules (ShiftRuleError says which one stops it)."""
    if (aware(shift.ends_at) or now) <= now:
        raise ShiftRuleError("That shift is over.")
    if shift.languages and not set(shift.languages) & set(peer.languages or []):
        raise ShiftRuleError("That shift needs a peer who speaks " + " or ".join(shift.languages) + ".")
    taken = signups(session, shift.id)
    if peer.id in taken:
        raise ShiftRuleError("You are already on that shift.")
    if len(taken) >= shift.peers_needed:
        raise ShiftRuleError("That shift is full.")
    limit = rules(session).max_shifts_per_week
    week = _week_of(aware(shift.starts_at) or now, zone)
    mine = session.scalars(select(Shift).join(ShiftSignup, ShiftSignup.shift_id == Shift.id)
                           .where(ShiftSignup.peer_id == peer.id)).all()
    if sum(1 for s in mine if _week_of(aware(s.starts_at) or now, zone) == week) >= limit:
        raise ShiftRuleError(f"You already have {limit} shift{'s' if limit != 1 else ''} that week, the most allowed.")
    session.add(ShiftSignup(shift_id=shift.id, peer_id=peer.id, created_at=now))
    _audit(session, user_id, "shift_signup", "shift", shift.id, f"peer {peer.id} signed up")
    try:
        session.commit()
    except IntegrityError as exc:  # the same peer twice at once
        session.rollback()
        raise ShiftRuleError("You are already on that shift.") from exc


def drop(session: Session, peer: Peer, shift: Shift, user_id: int | None, now: datetime) -> None:
    """Take a peer off a shift, if it is far enough ahead (ShiftRuleError otherwise)."""
    row = session.scalar(select(ShiftSignup).where(ShiftSignup.shift_id == shift.id, ShiftSignup.peer_id == peer.id))
    if row is None:
        raise ShiftRuleError("You are not on that shift.")
    notice = rules(session).drop_notice_hours
    if not may_drop(shift, notice, now):
        raise ShiftRuleError(f"Shifts can be dropped up to {notice} hours before they start; "
                             "ask a supervisor to find cover.")
    session.delete(row)
    _audit(session, user_id, "shift_drop", "shift", shift.id, f"peer {peer.id} dropped")
    session.commit()


def may_drop(shift: Shift, notice_hours: int, now: datetime) -> bool:
    """Whether a peer may still drop this shift themselves: it starts at least ``notice_hours`` from now."""
    return (aware(shift.starts_at) or now) - now >= timedelta(hours=notice_hours)


def next_shift(session: Session, peer_id: int, now: datetime) -> Shift | None:
    """The peer's next shift (or the one they are in now)."""
    return session.scalar(select(Shift).join(ShiftSignup, ShiftSignup.shift_id == Shift.id)
                          .where(ShiftSignup.peer_id == peer_id, Shift.ends_at > now)
                          .order_by(Shift.starts_at).limit(1))


@dataclass(frozen=True)
class OnCall:
    """Someone on an on-call shift now: the peer, and their staff login when it has a supervisor's role."""

    peer: Peer
    supervisor: StaffUser | None


def on_call_now(session: Session, now: datetime) -> list[OnCall]:
    """Who is signed up to an on-call shift covering ``now``, in rota order (earliest shift, then sign-up), once each."""
    peers = session.scalars(select(Peer).join(ShiftSignup, ShiftSignup.peer_id == Peer.id)
                            .join(Shift, Shift.id == ShiftSignup.shift_id)
                            .where(Shift.on_call.is_(True), Shift.starts_at <= now, Shift.ends_at > now,
                                   Peer.active.is_(True))
                            .order_by(Shift.starts_at, ShiftSignup.created_at, ShiftSignup.id)).all()
    first: dict[int, Peer] = {}
    for peer in peers:  # a peer on two overlapping on-call shifts keeps their first place
        first.setdefault(peer.id, peer)
    unique = list(first.values())
    logins: dict[int, StaffUser] = {}
    if unique:
        for user in session.scalars(select(StaffUser).where(StaffUser.peer_id.in_([p.id for p in unique]),
                                                            StaffUser.role.in_(SUPERVISOR_ROLES),
                                                            StaffUser.active.is_(True)).order_by(StaffUser.id)):
            logins.setdefault(user.peer_id or 0, user)
    return [OnCall(p, logins.get(p.id)) for p in unique]


def on_call_supervisors(session: Session, vault: Vault, now: datetime,
                        asking_peer_id: int | None = None) -> list[str]:
    """Phones of the supervisors on call now, in rota order: each one's staff phone, else their peer phone."""
    numbers: list[str] = []
    for entry in on_call_now(session, now):
        if entry.supervisor is None or entry.peer.id == asking_peer_id:  # never ring the peer who is asking
            continue
        try:
            number = vault.decrypt_text(entry.supervisor.phone_encrypted or entry.peer.phone_encrypted)
        except DecryptError:  # one unreadable phone must not stop the others being rung
            log.error("the phone of on-call supervisor %s cannot be read", entry.supervisor.id)
            continue
        if number and number not in numbers:
            numbers.append(number)
    return numbers


def _on_call_numbers(session: Session, svc: Services, now: datetime) -> list[str]:
    """Phones of the peers on an on-call shift now (decrypted), else the supervisor's number.

    An on-call supervisor is texted on the phone of their staff login when it has one, as they
    are rung there for help: a supervisor's peer phone may be a shared line's handset.
    """
    numbers: list[str] = []
    for entry in on_call_now(session, now):
        own = entry.supervisor.phone_encrypted if entry.supervisor is not None else None
        try:
            number = svc.vault.decrypt_text(own or entry.peer.phone_encrypted)
        except DecryptError:  # one unreadable phone must not stop the others being texted
            log.error("the phone of on-call peer %s cannot be read", entry.peer.id)
            continue
        if number and number not in numbers:
            numbers.append(number)
    if not numbers and svc.settings.supervisor_number:
        numbers = [svc.settings.supervisor_number]
    return numbers


def language_names(flow: Flow) -> dict[str, str]:
    """Each language's name by code, as ``flow`` says it (its ``lang_<code>`` phrases: "English", "Spanish")."""
    return {name.removeprefix("lang_"): text for name, text in flow.strings.items() if name.startswith("lang_")}


def alert_unstaffed(session: Session, svc: Services, now: datetime) -> list[int]:
    """Text the on-call peer (else the supervisor) about shifts whose peers have not signed in; returns their ids."""
    due = session.scalars(select(Shift).where(Shift.on_call.is_(False), Shift.alerted_at.is_(None),
                                              Shift.starts_at <= now - ALERT_AFTER,
                                              Shift.starts_at > now - ALERT_WINDOW, Shift.ends_at > now)
                          .order_by(Shift.starts_at)).all()
    alerted = []
    # Staff texts are in English: the languages as the English flow names them ("English/Spanish").
    names = language_names(svc.flow("en"))
    for shift in due:
        peer_ids = signups(session, shift.id)
        signed_in = peer_ids and session.scalar(select(func.count()).select_from(Peer).where(
            Peer.id.in_(peer_ids), Peer.status.in_(ON_SHIFT)))
        if signed_in:
            continue
        # Marked (atomically) and committed before any text goes out: a retried tick never texts twice.
        claimed = session.execute(update(Shift).where(Shift.id == shift.id, Shift.alerted_at.is_(None))
                                  .values(alerted_at=now))
        session.commit()
        if rowcount(claimed) != 1:
            continue
        local = (aware(shift.starts_at) or now).astimezone(svc.settings.zone)
        languages = "/".join(names.get(code, code) for code in shift.languages or [])
        body = (f"peerline: nobody has signed in for the {local:%H:%M} shift ({languages}). "
                "Please sign in or find cover.")
        numbers = _on_call_numbers(session, svc, now)
        if not numbers:
            log.warning("shift %s has nobody signed in and there is no on-call peer or SUPERVISOR_NUMBER", shift.id)
        for number in numbers:
            try:
                svc.twilio.send_sms(number, body)
            except TwilioGatewayError:  # network failures included
                log.exception("could not text about shift %s", shift.id)
        alerted.append(shift.id)
    return alerted
