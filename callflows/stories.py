"""Peer stories: which are approved and consented, and in what order (the one a caller on hold hears next: :mod:`callflows.hold`)."""
from __future__ import annotations

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from models import PeerStory

# A story a caller may hear: approved by a supervisor and consented to by the peer.
PLAYABLE: tuple[ColumnElement[bool], ...] = (PeerStory.status == "approved", PeerStory.consent_given.is_(True))


def playable() -> Select[PeerStory]:
    """Stories a caller may hear (:data:`PLAYABLE`), in a stable order."""
    return select(PeerStory).where(*PLAYABLE).order_by(PeerStory.id)


def is_playable(story: PeerStory) -> bool:
    """True when a caller may hear this story (the same rule as :func:`playable`)."""
    return story.status == "approved" and bool(story.consent_given)


def approved_stories(session: Session, topic: str, language: str) -> list[PeerStory]:
    """Playable stories on a topic in a language."""
    return list(session.scalars(playable().where(PeerStory.topic == topic, PeerStory.language == language)))
