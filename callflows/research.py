"""Research export: the de-identified rows behind ``peerline export``.

The export is de-identified by construction: it reads only coded fields (node ids, keys,
outcome and risk codes, languages, bucketed durations, dates) and writes a pseudonym in
place of the caller. Numbers, hashes, transcripts, audio and free text never enter a row,
and every coded value is checked against a narrow pattern before it is written, so a
future free-text value in one of those columns is dropped rather than exported.

The pseudonym is keyed with ``RESEARCH_KEY``, a key apart from the data key: the same caller
has the same pseudonym in every export (periods link), but nobody holding the operational
database without that key can compute it, and the export holds nothing that joins back.
Before anything is written, :func:`protect` blanks (``*``) the cells that would single a
caller out: any combination of the coded fields shared by fewer than ``min_group`` calls.
Every column is described in :func:`dictionary`, which a test holds equal to the columns.
"""
from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import re
import secrets
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import IO, Iterable, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callflows import records
from callflows.errors import ResearchExportError
from callflows.times import as_utc
from models import Call, CallRecord, Caller, Voicemail

log = logging.getLogger(__name__)

# The peer's post-call record of the call (callflows.records): codes only, never free text.
RECORD_COLUMNS = ("record_reason", "record_outcome", "record_referral", "record_risk")
DAY_COLUMNS = ("caller", "call_date", "language", "menu_path", "outcome", "duration", "voicemail_risk",
               *RECORD_COLUMNS)
WEEK_COLUMNS = ("caller", "call_week", "language", "menu_path", "outcome", "duration", "voicemail_risk",
                *RECORD_COLUMNS)
# The triage's levels, lowest first ("mentioned": only negated risk words); "unknown" (the demo
# speech model could not judge) is left empty, as a message not yet triaged is.
RISK_ORDER = ("none", "mentioned", "low", "medium", "high")
# Upper bounds (seconds, exclusive) of the duration buckets; coarse on purpose.
DURATION_BUCKETS = ((60, "0-1m"), (300, "1-5m"), (900, "5-15m"), (1800, "15-30m"))
OUTCOMES = ("hung_up", "voicemail", "callback_requested")
# A cell of a combination of coded fields shared by fewer calls than this is blanked (the small-cell rule).
MIN_GROUP = 11
SUPPRESSED = "*"
# The fields that together could single a caller out, blanked in this order until every
# combination is shared by MIN_GROUP calls (the menu path is the most telling), then the date.
# The record's reason is nearly as telling as the path; its yes/no referral the least.
QUASI_IDENTIFIERS = ("menu_path", "record_reason", "duration", "record_risk", "voicemail_risk", "record_outcome",
                     "outcome", "record_referral", "language")
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


def generate_research_key() -> str:
    """A new random RESEARCH_KEY."""
    return secrets.token_urlsafe(32)


def research_pseudonym(research_key: str, number_hash: str) -> str:
    """The caller's research pseudonym: keyed with RESEARCH_KEY, the same in every export, never the operational id."""
    key = hashlib.sha256(b"peerline-research:" + research_key.encode("utf-8")).digest()
    return "P-" + hmac.new(key, number_hash.encode("ascii"), hashlib.sha256).hexdigest()[:12]


def columns(period: str = "day") -> tuple[str, ...]:
    """The export's columns for a day or week precision."""
    return WEEK_COLUMNS if period == "week" else DAY_COLUMNS


def export_rows(session: Session, research_key: str, window: ExportWindow,
                period: str = "day") -> Iterator[dict[str, str]]:
    """De-identified rows, one per inbound call, oldest first (before :func:`protect`)."""
    query = (select(Call, Caller.number_hash).outerjoin(Caller, Call.caller_id == Caller.id)
             .where(Call.direction == "inbound").options(selectinload(Call.events)))
    if window.since is not None:
        query = query.where(Call.started_at >= window.since)
    if window.until is not None:
        query = query.where(Call.started_at < window.until)
    found = session.execute(query.order_by(Call.started_at, Call.id)).all()
    calls = [call for call, _hash in found]
    hashes = {call.id: number_hash for call, number_hash in found}
    risks: dict[int, list[str | None]] = {}
    if calls:
        for call_id, level in session.execute(
            select(Voicemail.call_id, Voicemail.risk_level).where(Voicemail.call_id.in_([c.id for c in calls]))
        ):
            if call_id is not None:
                risks.setdefault(call_id, []).append(level)
    # One record per call: the latest peer's, when more than one peer recorded the same call.
    kept: dict[int, CallRecord] = {}
    if calls:
        for row in session.scalars(select(CallRecord).where(CallRecord.call_id.in_([c.id for c in calls]))
                                      .order_by(CallRecord.id)):
            kept[row.call_id] = row
    date_column = "call_week" if period == "week" else "call_date"
    for call in calls:
        number_hash = hashes.get(call.id)
        record = kept.get(call.id)
        yield {
            "caller": research_pseudonym(research_key, number_hash) if number_hash else "",
            date_column: period_label(call.started_at, period),
            "language": _code(call.language),
            "menu_path": menu_path(call),
            "outcome": _code(call.outcome),
            "duration": duration_bucket(call.duration_s),
            "voicemail_risk": _highest_risk(risks.get(call.id, [])),
            **record_cells(record),
        }


def record_cells(record: CallRecord | None) -> dict[str, str]:
    """The record columns of one call: configured codes only ("" when not recorded or not a known code)."""
    config = records.fields()
    if record is None:
        return dict.fromkeys(RECORD_COLUMNS, "")

    def known(code: str | None, choices: tuple[records.Choice, ...]) -> str:
        return code if code and code in {c.code for c in choices} and _CODE.match(code) else ""

    return {"record_reason": known(record.reason, config.reasons),
            "record_outcome": known(record.outcome, config.outcomes),
            "record_referral": "" if record.referral is None else ("yes" if record.referral else "no"),
            "record_risk": known(record.risk, config.risks)}


@dataclass
class Protection:
    """What :func:`protect` blanked: cells per column, and the smallest group it had to reach."""

    min_group: int
    suppressed: Counter[str] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        """A summary for the person exporting."""
        if not self.suppressed:
            return [f"every combination of coded fields is shared by at least {self.min_group} calls"]
        cells = ", ".join(f"{name} {count}" for name, count in self.suppressed.most_common())
        return [f"blanked ({SUPPRESSED}) cells shared by fewer than {self.min_group} calls: {cells}"]


def protect(rows: Iterable[dict[str, str]], period: str = "day",
            min_group: int = MIN_GROUP) -> tuple[list[dict[str, str]], Protection]:
    """Blank the cells that would re-identify: every combination of coded fields must be shared by ``min_group`` calls.

    Local suppression, most telling field first: for the rows whose combination of the quasi-
    identifiers (date, language, menu path, outcome, duration, voicemail risk and the post-call
    record's codes) is rarer than ``min_group``, the menu path is blanked; still too rare, the
    record's reason; and so on (:data:`QUASI_IDENTIFIERS`), the date
    last. A blank counts as a value of its own (strict: a row is kept only when what is written
    is shared by ``min_group`` calls). A row whose every field is blanked keeps only its
    pseudonym (so counts per caller hold).
    """
    date_column = "call_week" if period == "week" else "call_date"
    order = (*QUASI_IDENTIFIERS, date_column)
    out = [dict(row) for row in rows]
    report = Protection(min_group)
    if min_group <= 1:
        return out, report
    for name in order:
        groups = Counter(tuple(row[c] for c in order) for row in out)
        rare = [row for row in out if groups[tuple(row[c] for c in order)] < min_group]
        if not rare:
            break
        for row in rare:
            if row[name] != SUPPRESSED:
                row[name] = SUPPRESSED
                report.suppressed[name] += 1
    return out, report


@dataclass(frozen=True)
class ColumnDoc:
    """One column of the export: its name, type, meaning and allowed values."""

    name: str
    type: str
    meaning: str
    allowed: str


def dictionary(period: str = "day") -> list[ColumnDoc]:
    """The data dictionary: every column of the export, in order."""
    date_doc = (ColumnDoc("call_week", "string", "ISO week in which the call started, in UTC (never the day or time)",
                          f"YYYY-Www, e.g. 2026-W48; {SUPPRESSED} when suppressed")
                if period == "week" else
                ColumnDoc("call_date", "string", "day on which the call started, in UTC (never the time of day)",
                          f"YYYY-MM-DD; {SUPPRESSED} when suppressed"))
    kept = f"{SUPPRESSED} when suppressed (shared by fewer than the export's minimum group of calls)"
    docs = [
        ColumnDoc("caller", "string", "research pseudonym of the caller, keyed with RESEARCH_KEY: the same caller has "
                  "the same pseudonym in every export made with that key, and it cannot be computed from the "
                  "operational database", "P- and 12 hexadecimal characters; empty when the number was withheld"),
        date_doc,
        ColumnDoc("language", "string", "language the caller chose for the call", f"en, es; empty when not chosen; {kept}"),
        ColumnDoc("menu_path", "string", "menu steps as node ids and the keys or coded inputs chosen, joined by >, "
                  "e.g. incoming>language:1>main:2 (speech is never stored, only which option it chose)",
                  f"node[:key or code] separated by >; {kept}"),
        ColumnDoc("outcome", "string", "how the call ended, as the line recorded it", f"{', '.join(OUTCOMES)}; "
                  f"empty when still in progress; {kept}"),
        ColumnDoc("duration", "string", "length of the call in coarse buckets",
                  f"{', '.join(label for _upper, label in DURATION_BUCKETS)}, 30m+; empty when unknown; {kept}"),
        ColumnDoc("voicemail_risk", "string", "highest risk level found in a voicemail the caller left on this call",
                  f"{', '.join(RISK_ORDER)} (mentioned: only negated risk words); empty when no voicemail, not "
                  f"yet triaged or the risk is unknown; {kept}"),
    ]
    config = records.fields()
    not_recorded = f"empty when the peer recorded none; {kept}"
    docs += [
        ColumnDoc("record_reason", "string", "reason for the call, as the peer coded it in the post-call record "
                  "(a callback's record belongs to the call on which it was asked for)",
                  f"{', '.join(c.code for c in config.reasons)}; {not_recorded}"),
        ColumnDoc("record_outcome", "string", "outcome of the conversation, as the peer coded it in the post-call record",
                  f"{', '.join(c.code for c in config.outcomes)}; {not_recorded}"),
        ColumnDoc("record_referral", "string", "whether the peer gave a referral, from the post-call record",
                  f"yes, no; {not_recorded}"),
        ColumnDoc("record_risk", "string", "risk level the peer noticed, from the post-call record",
                  f"{', '.join(c.code for c in config.risks)}; {not_recorded}"),
    ]
    return docs


def write_dictionary(out: IO[str], period: str = "day") -> None:
    """Write the data dictionary as CSV (column, type, meaning, allowed_values)."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("column", "type", "meaning", "allowed_values"))
    for doc in dictionary(period):
        writer.writerow((doc.name, doc.type, doc.meaning, doc.allowed))


def write_parquet(rows: list[dict[str, str]], path: Path, period: str = "day") -> int:
    """Write the rows as a Parquet file (every column a string, each with its meaning as field metadata)."""
    try:
        import pyarrow as pa  # optional part: only this format needs it, and it is slow to import
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise ResearchExportError("Parquet needs pyarrow: pip install -r requirements.txt") from exc
    docs = {doc.name: doc for doc in dictionary(period)}
    schema = pa.schema([pa.field(name, pa.string(), metadata={"meaning": docs[name].meaning,
                                                              "allowed_values": docs[name].allowed})
                        for name in columns(period)], metadata={"source": "peerline export"})
    table = pa.table({name: [row[name] for row in rows] for name in columns(period)}, schema=schema)
    pq.write_table(table, str(path))
    return len(rows)


def write_csv(rows: Iterable[dict[str, str]], out: IO[str], period: str = "day") -> int:
    """Write the rows as CSV with a header; returns the number of rows."""
    writer = csv.DictWriter(out, fieldnames=columns(period), lineterminator="\n")
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
