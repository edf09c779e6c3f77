"""A peer is never alone: hand-offs during a call (crisis line, supervisor) and monitor sessions.

A :class:`Handoff` is one outbound leg the line placed into a caller's room at a peer's request
(the crisis line added as a participant, or the supervisor rung with a whisper), with its time
and outcome. A :class:`MonitorSession` is one staff member (or trainee peer) listening to,
coaching or joining a live call: who, which call, the mode, start and end. Only ids, times and
states are kept here: the number a leg rang is never stored in clear. Each row belongs to exactly
one room: a live call's (``request_id``) or a callback attempt's (``callback_attempt_id``).
"""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, utcnow

HANDOFF_KINDS = ("crisis", "supervisor")
# ringing -> answered (picked up) -> joined (a supervisor pressed 1) -> ended; or no_answer / failed / canceled.
HANDOFF_STATUSES = ("ringing", "answered", "joined", "ended", "no_answer", "failed", "canceled")
MONITOR_MODES = ("listen", "coach", "join", "shadow")
MONITOR_STATUSES = ("ringing", "live", "ended", "no_answer", "failed", "canceled")
# Migration 0005c holds the same check.
ONE_ROOM = "(request_id IS NULL) <> (callback_attempt_id IS NULL)"


class Handoff(Base):
    """The crisis line or a supervisor brought into a caller's room by their peer."""

    __tablename__ = "handoffs"
    __table_args__ = (CheckConstraint(ONE_ROOM, name="ck_handoffs_one_room"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("peer_requests.id", ondelete="CASCADE"), index=True)
    callback_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("callback_attempts.id", ondelete="CASCADE"),
                                                            index=True)
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="ringing", index=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class MonitorSession(Base):
    """A supervisor (or a trainee) listening, coaching or joining one live call or callback."""

    __tablename__ = "monitor_sessions"
    __table_args__ = (CheckConstraint(ONE_ROOM, name="ck_monitor_sessions_one_room"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("peer_requests.id", ondelete="CASCADE"), index=True)
    callback_attempt_id: Mapped[int | None] = mapped_column(ForeignKey("callback_attempts.id", ondelete="CASCADE"),
                                                            index=True)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    trainee_peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"))
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"), index=True)  # the peer whose call it was
    mode: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="ringing", index=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
