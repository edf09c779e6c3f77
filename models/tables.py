"""SQLAlchemy 2.0 models. Phone numbers, audio and transcripts are stored only encrypted."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

if TYPE_CHECKING:
    from models.crypto import Vault


def utcnow() -> datetime:
    """Current time as an aware UTC datetime."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base for all peerline tables."""

    type_annotation_map = {datetime: DateTime(timezone=True), dict[str, Any]: JSON, list[str]: JSON}


ROLES = ("admin", "supervisor", "peer")
# The roles that supervise: the supervisor pages, listening in from the live board, and being rung
# (as the on-call supervisor) when a peer asks for help.
SUPERVISOR_ROLES = ("admin", "supervisor")
PEER_STATUSES = ("signed_off", "available", "busy", "wrap_up", "break")
STORY_STATUSES = ("draft", "approved", "retired")
VOICEMAIL_STATUSES = ("pending", "transcribing", "transcribed", "failed")


class StaffUser(Base):
    """A dashboard login: admin, supervisor or peer."""

    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20))
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    phone_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)  # a supervisor's own phone, for listening in
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # Sessions carry the version they were signed in with; signing out bumps it, so every
    # cookie issued before (on any device) stops working at once.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    peer: Mapped[Peer | None] = relationship()


class Peer(Base):
    """A peer supporter who takes calls. The personal phone is encrypted; the hash finds it."""

    __tablename__ = "peers"

    id: Mapped[int] = mapped_column(primary_key=True)
    display_name: Mapped[str] = mapped_column(String(80))
    phone_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    phone_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    languages: Mapped[list[str]] = mapped_column(default=lambda: ["en"])
    tags: Mapped[list[str]] = mapped_column(default=list)
    status: Mapped[str] = mapped_column(String(20), default="signed_off")
    status_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_call_ended_at: Mapped[datetime | None]
    calls_in_a_row: Mapped[int] = mapped_column(Integer, default=0)
    pin_hash: Mapped[str | None] = mapped_column(String(255))
    pin_failures: Mapped[int] = mapped_column(Integer, default=0)
    pin_locked_until: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    trainee: Mapped[bool] = mapped_column(Boolean, default=False)  # may shadow other peers' calls, muted
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The peer's own call with the line (signing on by phone): never rung while it lasts.
    line_call_sid: Mapped[str | None] = mapped_column(String(64))
    missed_offers: Mapped[int] = mapped_column(Integer, default=0)  # offers in a row the phone did not take
    auto_break_at: Mapped[datetime | None]  # put on break for missed offers (told on the next call and page)

    def set_phone(self, vault: Vault, phone: str) -> None:
        """Store the personal phone encrypted, with the keyed hash that finds it (never in clear)."""
        self.phone_encrypted = vault.encrypt_text(phone)
        self.phone_hash = vault.lookup_hash(phone)


class Caller(Base):
    """Someone who called. Found by a keyed hash of the number; the number itself is encrypted."""

    __tablename__ = "callers"

    id: Mapped[int] = mapped_column(primary_key=True)
    number_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    number_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str | None] = mapped_column(String(8))
    slow_speech: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_call_at: Mapped[datetime | None]


class Call(Base):
    """One phone call through the line (inbound, or an outbound leg the line placed)."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    caller_id: Mapped[int | None] = mapped_column(ForeignKey("callers.id"), index=True)
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    status: Mapped[str] = mapped_column(String(20), default="in-progress")
    language: Mapped[str | None] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    duration_s: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str | None] = mapped_column(String(32))

    caller: Mapped[Caller | None] = relationship()
    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan"
    )


class CallEvent(Base):
    """One step of a call's path through the menus, with its time."""

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    node: Mapped[str] = mapped_column(String(64))
    # What the caller did: a key, "speech:<option>", "no-input", "invalid"; never raw speech.
    input: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(255))

    call: Mapped[Call] = relationship(back_populates="events")


class PeerStory(Base):
    """A recorded peer story, played to callers once approved and consented."""

    __tablename__ = "peer_stories"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    topic: Mapped[str] = mapped_column(String(40), index=True)
    language: Mapped[str] = mapped_column(String(8), index=True)
    transcript: Mapped[str] = mapped_column(Text)
    audio_path: Mapped[str | None] = mapped_column(String(500))
    duration_s: Mapped[float | None] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(20), default="draft")
    consent_given: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_at: Mapped[datetime | None]
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Voicemail(Base):
    """A message left by a caller. Audio and transcript are encrypted at rest."""

    __tablename__ = "voicemails"

    id: Mapped[int] = mapped_column(primary_key=True)
    recording_sid: Mapped[str] = mapped_column(String(64), unique=True)
    recording_url: Mapped[str] = mapped_column(String(500))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    caller_id: Mapped[int | None] = mapped_column(ForeignKey("callers.id"))
    language: Mapped[str | None] = mapped_column(String(8))
    duration_s: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    audio_path: Mapped[str | None] = mapped_column(String(500))
    provider_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    transcript_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    words_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    confidence: Mapped[float | None] = mapped_column(Float)
    engine: Mapped[str | None] = mapped_column(String(40))
    model_name: Mapped[str | None] = mapped_column(String(120))
    risk_level: Mapped[str | None] = mapped_column(String(10), index=True)
    risk_score: Mapped[int] = mapped_column(Integer, default=0)
    risk_terms_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    job_id: Mapped[str | None] = mapped_column(String(64))
    enqueued_at: Mapped[datetime | None]
    transcribed_at: Mapped[datetime | None]
    # Set when the recording held no recognisable speech (a silent or hung-up message).
    no_speech: Mapped[bool] = mapped_column(Boolean, default=False)
    # When the on-call supervisor was texted about a high-risk message (so a retry never texts twice).
    notified_at: Mapped[datetime | None]
    reviewed_at: Mapped[datetime | None]
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class CallbackRequest(Base):
    """A caller's request to be called back; keeps the caller's original arrival time."""

    __tablename__ = "callback_requests"
    # The line of pending callbacks in arrival order: dispatch reads its first page from this index
    # and stops, instead of sorting every pending callback (a thousand waiting) to read ten.
    __table_args__ = (Index("ix_callback_requests_line", "status", "arrived_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    caller_id: Mapped[int | None] = mapped_column(ForeignKey("callers.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    number_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8), default="en")
    window: Mapped[str] = mapped_column(String(16), default="now")
    allow_message: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    arrived_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Callbacks (ivr.callbacks): the safe window in UTC, when the next attempt is due, attempts made.
    not_before: Mapped[datetime | None]
    not_after: Mapped[datetime | None]
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"))
    call_sid: Mapped[str | None] = mapped_column(String(64), index=True)  # the call it was asked on
    outcome: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Append-only record of a staff action (view, reveal, status change)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    staff_user_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    action: Mapped[str] = mapped_column(String(40))
    target_type: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(String(500))
    # HMAC-SHA256 of the previous entry's chain hash and this entry (``peerline audit verify``):
    # an entry changed or removed behind the app's back breaks the chain from there on.
    chain_hash: Mapped[str | None] = mapped_column(String(64))


class VoicemailNote(Base):
    """A supervisor's note on a voicemail; the text is encrypted like the transcript."""

    __tablename__ = "voicemail_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    voicemail_id: Mapped[int] = mapped_column(ForeignKey("voicemails.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    body_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FollowUp(Base):
    """A follow-up a supervisor assigns to a peer (for example after a voicemail)."""

    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(primary_key=True)
    voicemail_id: Mapped[int | None] = mapped_column(ForeignKey("voicemails.id", ondelete="SET NULL"), index=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), index=True)
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff_users.id"))
    note: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20), default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    done_at: Mapped[datetime | None]

    peer: Mapped[Peer] = relationship()


class WrapUpNote(Base):
    """A peer's short wrap-up note after a call (no caller details; encrypted at rest)."""

    __tablename__ = "wrap_up_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), index=True)
    body_encrypted: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


PEER_REQUEST_STATUSES = ("ringing", "waiting", "connected", "ended", "abandoned", "callback", "message",
                         "crisis", "no_peers")
RING_LEG_STATUSES = ("ringing", "answered", "accepted", "taken", "no_answer", "canceled", "caller_gone")


class PeerRequest(Base):
    """A caller asking for a peer: from the request until connected, ended or given up.

    ``peer_id`` is set once, atomically (``UPDATE ... WHERE peer_id IS NULL``), by the first
    peer who presses 1; that claim is what makes two simultaneous accepts safe.
    """

    __tablename__ = "peer_requests"

    id: Mapped[int] = mapped_column(primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    language: Mapped[str] = mapped_column(String(8), default="en")
    wanted_tag: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20), default="ringing", index=True)
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"))
    hold_plays: Mapped[int] = mapped_column(Integer, default=0)
    arrived_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    connected_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]


class RingLeg(Base):
    """One outbound call that rings a peer for a request; its SID lets us cancel it."""

    __tablename__ = "ring_legs"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("peer_requests.id", ondelete="CASCADE"), index=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"), index=True)
    call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="ringing", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]


CALLBACK_STATUSES = ("draft", "pending", "dialing", "completed", "missed", "canceled")
CALLBACK_STAGES = ("peer_ringing", "peer_answered", "caller_ringing", "connected", "ended")


class CallbackAttempt(Base):
    """One try at a callback: the peer's leg, then the caller's leg, and how it ended."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callback_requests.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer, default=1)  # the caller attempt this counts as
    peer_id: Mapped[int | None] = mapped_column(ForeignKey("peers.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20), default="peer_ringing", index=True)
    peer_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    caller_call_sid: Mapped[str | None] = mapped_column(String(64), unique=True)
    answered_by: Mapped[str | None] = mapped_column(String(32))
    outcome: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    # The caller, past the greeting, was put in the room while their peer was still there.
    caller_joined_at: Mapped[datetime | None]
    # The peer pressed * in the conversation (so they had met the caller): their in-call menu.
    peer_stepped_out_at: Mapped[datetime | None]
