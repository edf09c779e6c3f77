"""Callbacks that keep the caller's place (being built; see ivr.callbacks_voice)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from ivr.services import Services


def offer_due(session: Session, svc: Services, now: datetime, arrived_before: datetime | None = None) -> int:
    """Offer free peers to due callbacks (arrived before ``arrived_before``); returns peer calls placed."""
    return 0
