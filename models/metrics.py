"""Rows the line's metrics need that no other table keeps: each peer status change, and the caller survey."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, utcnow


class PeerStatusChange(Base):
    """A peer's status from ``at`` on (available, busy, wrap_up, break, signed_off): occupancy and after-call work."""

    __tablename__ = "peer_status_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SurveyAnswer(Base):
    """One keypad answer to the optional caller survey after a peer call; stored by pseudonym, never the caller's id."""

    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("response", "question", name="uq_survey_answers_response_question"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    respondent: Mapped[str] = mapped_column(String(32), index=True)  # Vault.pseudonym of the caller (or the call)
    response: Mapped[str] = mapped_column(String(32))  # Vault.pseudonym of the peer call: one answer per question
    question: Mapped[str] = mapped_column(String(32))
    answer: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(8), default="en")
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
