"""Time helpers shared by every rule: stored times are UTC."""
from __future__ import annotations

from datetime import datetime, timezone


def aware(value: datetime | None) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back naive ones; every stored time is UTC)."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def as_utc(moment: datetime) -> datetime:
    """Any datetime in UTC (naive ones are taken to be UTC already)."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
