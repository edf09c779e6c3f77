"""Peer stories: which are approved and consented, in what order, and the one a waiting caller hears next."""
from __future__ import annotations

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from callflows.calls import commit_step
from models import PeerStory
from models.tables import PeerRequest


def playable() -> Select[PeerStory]:
    """Stories a caller may hear: approved by a supervisor and consented to by the peer, in a stable order."""
    return (select(PeerStory)
            .where(PeerStory.status == "approved", PeerStory.consent_given.is_(True))
            .order_by(PeerStory.id))


def is_playable(story: PeerStory) -> bool:
    """True when a caller may hear this story (the same rule as :func:`playable`)."""
    return story.status == "approved" and bool(story.consent_given)


def approved_stories(session: Session, topic: str, language: str) -> list[PeerStory]:
    """Playable stories on a topic in a language."""
    return list(session.scalars(playable().where(PeerStory.topic == topic, PeerStory.language == language)))


def hold_story(session: Session, req: PeerRequest) -> PeerStory | None:
    """The next playable story for a waiting caller (rotates on each wait document)."""
    stories = list(session.scalars(playable().where(PeerStory.language == req.language)))
    if not stories:
        return None
    story = stories[req.hold_plays % len(stories)]
    req.hold_plays += 1
    commit_step(session)  # which story plays next is not worth a wait for the disk
    return story
