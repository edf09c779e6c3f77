"""Research export: the de-identified rows behind ``peerline export``.

The export is de-identified by construction: it reads only coded fields (node ids, keys,
outcome and risk codes, languages, bucketed durations, dates) and writes a pseudonym in
place of the caller. Numbers, hashes, transcripts, audio and free text never enter a row,
and every coded value is checked against a narrow pattern before it is written, so a
future free-text value in one of those columns is dropped rather than exported.
"""
from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import IO, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callflows.times import as_utc
from models import Call, Voicemail
from models.crypto import Vault

log = logging.getLogger(__name__)

DAY_COLUMNS = ("caller", "call_date", "language", "menu_path", "outcome", "duration", "voicemail_risk")
WEEK_COLUMNS = ("caller", "call_week", "language", "menu_path", "outcome", "duration", "voicemail_risk")
RISK_ORDER = ("none", "low", "medium", "high")
# Upper bounds (seconds, exclusive) of the duration buckets; coarse on purpose.
DURATION_BUCKETS = ((60, "0-1m"), (300, "1-5m"), (900, "5-15m"), (1800, "15-30m"))
_CODE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
_KEYS = re.compile(r"^[0-9*#]{1,4}$")


def _code(value: str | None) -> str:
    """A coded value (outcome, language, node id), or "" when it looks like anything else."""
    return value if value and _CODE.match(value) else ""


def duration_bucket(seconds: int | None) -> str:
    """The coarse bucket of a call's duration ("" when unknown)."""
    if seconds is None or seconds < 0:
        return ""
    for upper, label in DURATION_BUCKETS:
        if seconds < upper:
            return label
    return "30m+"


def period_label(started: datetime, period: str) -> str:
    """The call's day (YYYY-MM-DD) or ISO week (YYYY-Www), in UTC; never the time of day."""
    day = as_utc(started).date()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def menu_path(call: Call) -> str:
    """The call's path as node ids and chosen keys, e.g. ``incoming>language:1>main:2``."""
    steps = []
    for event in call.events:
        node = _code(event.node)
        if not node:
            continue
        chosen = event.input or ""
        # Keys, or the engine's coded outcomes (no-input, invalid...); speech is never stored
        # raw, but anything that is not a key or a code is left out all the same.
        chosen = chosen if _KEYS.match(chosen) or _CODE.match(chosen) else ""
        steps.append(f"{node}:{chosen}" if chosen else node)
    return ">".join(steps)


def _highest_risk(levels: Iterable[str | None]) -> str:
    known = [lvl for lvl in levels if lvl in RISK_ORDER]
    return max(known, key=RISK_ORDER.index) if known else ""


@dataclass(frozen=True)
class ExportWindow:
    """Calls started on or after ``since`` and before ``until`` (both optional, UTC)."""

    since: datetime | None = None
    until: datetime | None = None


def export_rows(session: Session, vault: Vault, window: ExportWindow, period: str = "day") -> Iterator[dict[str, str]]:
    """De-identified rows, one per inbound call, oldest first."""
    query = select(Call).where(Call.direction == "inbound").options(selectinload(Call.events))
    if window.since is not None:
        query = query.where(Call.started_at >= window.since)
    if window.until is not None:
        query = query.where(Call.started_at < window.until)
    calls = session.scalars(query.order_by(Call.started_at, Call.id)).all()
    risks: dict[int, list[str | None]] = {}
    if calls:
        for call_id, level in session.execute(
            select(Voicemail.call_id, Voicemail.risk_level).where(Voicemail.call_id.in_([c.id for c in calls]))
        ):
            if call_id is not None:
                risks.setdefault(call_id, []).append(level)
    date_column = "call_week" if period == "week" else "call_date"
    for call in calls:
        yield {
            "caller": vault.pseudonym("caller", call.caller_id) if call.caller_id is not None else "",
            date_column: period_label(call.started_at, period),
            "language": _code(call.language),
            "menu_path": menu_path(call),
            "outcome": _code(call.outcome),
            "duration": duration_bucket(call.duration_s),
            "voicemail_risk": _highest_risk(risks.get(call.id, [])),
        }


def write_csv(rows: Iterable[dict[str, str]], out: IO[str], period: str = "day") -> int:
    """Write the rows as CSV with a header; returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=WEEK_COLUMNS if period == "week" else DAY_COLUMNS,
                            lineterminator="\n")
    writer.writeheader()
    count = 0
    for row in rows:
        writer.writerow(row)
        count += 1
    return count


def day_start(value: datetime | None, plus_days: int = 0) -> datetime | None:
    """Midnight UTC of ``value``'s day (plus some days), for inclusive day ranges."""
    if value is None:
        return None
    return datetime.combine(value.date() + timedelta(days=plus_days), time.min, tzinfo=timezone.utc)
