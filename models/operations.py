"""Running the line day to day: open hours, holidays and closures; caller plans, limits and blocks;
post-call records; shifts and sign-ups.

Kept deliberately simple so reports (metrics, the research export) can read them directly:

- :class:`OpenHours`: one row per opening period of a weekday, in minutes after local midnight
  in ``LINE_TIMEZONE`` (``closes_minute <= opens_minute`` means the period runs past midnight).
  No rows at all means the line is open around the clock.
- :class:`Holiday`: a local date the line is closed all day.
- :class:`Closure`: a manual "close now" with its reason; open while ``ended_at`` is NULL.
- :class:`CallerPlan`: a supervisor's care plan or alert for one caller (text encrypted at
  rest) and an optional daily call limit. Callers are shown by pseudonym, never by number.
- :class:`CallerBlock`: a block for abuse, with reason (encrypted) and expiry.
- :class:`CallRecord`: the peer's post-call record: codes from ``callflows/config/call_record.yaml``
  (reason, outcome, risk), referral yes/no and minutes. Codes only, never free text.
- :class:`ShiftTemplate` (weekly recurring), :class:`Shift` (one dated occurrence, UTC) and
  :class:`ShiftSignup` (a peer on a shift); :class:`ShiftRules` (one row) holds the
  supervisor's rules for signing up and dropping.
"""
from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Integer, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, utcnow


class OpenHours(Base):
    """One opening period on a weekday (0 = Monday), local minutes after midnight in LINE_TIMEZONE."""

    __tablename__ = "open_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    weekday: Mapped[int] = mapped_column(Integer, index=True)
    opens_minute: Mapped[int] = mapped_column(Integer)
    # At or before opens_minute: the period ends the next day (a night line, 20:00-02:00).
    closes_minute: Mapped[int] = mapped_column(Integer)


class Holiday(Base):
    """A local date on which the line is closed all day."""

    __tablename__ = "holidays"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    name: Mapped[str] = mapped_column(String(80))


class Closure(Base):
    """A manual closure ("close now"), in force until ``ended_at`` is set."""

    __tablename__ = "closures"

    id: Mapped[int] = mapped_column(primary_key=True)
    reason: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    ended_at: Mapped[datetime | None]
    started_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class CallerPlan(Base):
    """A supervisor's care plan or alert for one caller (encrypted), and their daily call limit."""

    __tablename__ = "caller_plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    caller_id: Mapped[int] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"), unique=True)
    plan_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    daily_limit: Mapped[int | None] = mapped_column(Integer)  # calls with a peer per local day; None = no limit
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class CallerBlock(Base):
    """A block for abuse: the caller hears a message (never silence) and keeps the crisis line."""

    __tablename__ = "caller_blocks"

    id: Mapped[int] = mapped_column(primary_key=True)
    caller_id: Mapped[int] = mapped_column(ForeignKey("callers.id", ondelete="CASCADE"), index=True)
    reason_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    lifted_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))


class CallRecord(Base):
    """A peer's post-call record of one call: codes from the configured lists, never free text."""

    __tablename__ = "call_records"
    __table_args__ = (UniqueConstraint("call_id", "peer_id", name="uq_call_records_call_peer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), index=True)
    reason: Mapped[str | None] = mapped_column(String(40))
    outcome: Mapped[str | None] = mapped_column(String(40))
    referral: Mapped[bool | None] = mapped_column(Boolean)
    risk: Mapped[str | None] = mapped_column(String(20))
    minutes: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(10), default="page")  # "keypad" or "page"
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShiftTemplate(Base):
    """A weekly recurring shift: weekday, local start and end minute, peers needed, languages, on-call."""

    __tablename__ = "shift_templates"

    id: Mapped[int] = mapped_column(primary_key=True)
    weekday: Mapped[int] = mapped_column(Integer)
    start_minute: Mapped[int] = mapped_column(Integer)
    end_minute: Mapped[int] = mapped_column(Integer)  # at or before start_minute: ends the next day
    peers_needed: Mapped[int] = mapped_column(Integer, default=1)
    languages: Mapped[list[str]] = mapped_column(default=lambda: ["en"])
    on_call: Mapped[bool] = mapped_column(Boolean, default=False)  # a backup shift, alerted by SMS
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Shift(Base):
    """One dated shift (UTC), made from a template for the weeks ahead."""

    __tablename__ = "shifts"
    __table_args__ = (UniqueConstraint("template_id", "starts_at", name="uq_shifts_template_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    template_id: Mapped[int | None] = mapped_column(ForeignKey("shift_templates.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime] = mapped_column(index=True)
    ends_at: Mapped[datetime]
    peers_needed: Mapped[int] = mapped_column(Integer, default=1)
    languages: Mapped[list[str]] = mapped_column(default=lambda: ["en"])
    on_call: Mapped[bool] = mapped_column(Boolean, default=False)
    # Set (atomically, before the SMS) when nobody had signed in 5 minutes after the start.
    alerted_at: Mapped[datetime | None]


class ShiftSignup(Base):
    """A peer signed up for a shift."""

    __tablename__ = "shift_signups"
    __table_args__ = (UniqueConstraint("shift_id", "peer_id", name="uq_shift_signups_shift_peer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    shift_id: Mapped[int] = mapped_column(ForeignKey("shifts.id", ondelete="CASCADE"), index=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShiftRules(Base):
    """The supervisor's rules for peers signing up and dropping shifts (one row; defaults when none)."""

    __tablename__ = "shift_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    max_shifts_per_week: Mapped[int] = mapped_column(Integer, default=5)
    drop_notice_hours: Mapped[int] = mapped_column(Integer, default=24)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
