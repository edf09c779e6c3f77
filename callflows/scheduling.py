"""How the rules ask for work later, without knowing RQ: the :class:`Jobs` protocol.

``queues.scheduler.RqJobs`` implements it with RQ (jobs enqueued as function objects, stable
ids, RQ's own scheduler). Every method raises :class:`~callflows.errors.SchedulingError` when
the job store is unreachable; the rules log that and go on, because the reconcilers rebuild
lost work from the database (the source of truth).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class Jobs(Protocol):
    """Background work the rules schedule (each call is idempotent for the same arguments)."""

    def wrap_up_ends(self, peer_id: int, started: float, after: timedelta) -> None:
        """Free ``peer_id`` when the wrap-up that began at ``started`` (epoch seconds) is over."""

    def dispatch_soon(self, after: timedelta) -> None:
        """Offer free peers to the line again after ``after``."""

    def callback_due(self, callback_id: int, attempts: int, due_at: datetime | None) -> None:
        """Offer a callback to free peers when it falls due (now when ``due_at`` is None or past)."""

    def transcribe(self, voicemail_id: int) -> str:
        """Transcribe a voicemail in the background; returns the job id."""
