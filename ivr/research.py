"""Research export (``peerline export``) and retention purge (``peerline purge``).

The export is de-identified by construction: it reads only coded fields (node ids, keys,
outcome and risk codes, languages, bucketed durations, dates) and writes a pseudonym in
place of the caller. Numbers, hashes, transcripts, audio and free text never enter a row,
and every coded value is checked against a narrow pattern before it is written, so a
future free-text value in one of those columns is dropped rather than exported.

Exceptions: errors surface as :class:`click.ClickException` with a clear message.
"""
from __future__ import annotations

import csv
import logging
import re
import sys
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import IO, Iterable, Iterator

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ivr.services import services
from models import Call, Voicemail
from models.crypto import Vault
from queues.retention import PURGE_INTERVAL, RetentionError, RetentionPolicy, purge, schedule_purge

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
    day = _as_utc(started).date()
    if period == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    return day.isoformat()


def _as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


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


def _day_start(value: datetime | None, plus_days: int = 0) -> datetime | None:
    if value is None:
        return None
    return datetime.combine(value.date() + timedelta(days=plus_days), time.min, tzinfo=timezone.utc)


@click.command("export")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day to include (UTC, YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day to include (UTC, YYYY-MM-DD, inclusive).")
@click.option("--period", type=click.Choice(["day", "week"]), default="day", show_default=True,
              help="Date precision of each row: the call's day or only its ISO week.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="CSV file to write (default: standard output).")
@with_appcontext
def export(since: datetime | None, until: datetime | None, period: str, output: Path | None) -> None:
    """Write a de-identified CSV of calls for research (pseudonyms, no numbers or free text)."""
    window = ExportWindow(_day_start(since), _day_start(until, plus_days=1))
    if window.since and window.until and window.since >= window.until:
        raise click.ClickException("--since must be on or before --until")
    svc = services()
    with svc.sessions() as session:
        rows = export_rows(session, svc.vault, window, period)
        if output is None:
            write_csv(rows, sys.stdout, period)
            return
        try:
            with output.open("w", newline="", encoding="utf-8") as fh:
                count = write_csv(rows, fh, period)
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from exc
    click.echo(f"exported {count} calls to {output}", err=True)


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--voicemail-days", type=int, default=None,
              help="Override RETENTION_DAYS_VOICEMAIL (days voicemail audio and text are kept).")
@click.option("--call-days", type=int, default=None,
              help="Override RETENTION_DAYS_CALLS (days call records and callers are kept).")
@click.option("--schedule", is_flag=True,
              help="Also schedule a daily purge on the RQ worker (it reschedules itself).")
@with_appcontext
def purge_command(dry_run: bool, voicemail_days: int | None, call_days: int | None, schedule: bool) -> None:
    """Delete voicemail audio and transcripts, call records and callers past their retention."""
    svc = services()
    settings = svc.settings
    try:
        policy = RetentionPolicy(
            settings.retention_days_voicemail if voicemail_days is None else voicemail_days,
            settings.retention_days_calls if call_days is None else call_days,
        )
        report = purge(svc.sessions, Path(settings.instance_path), policy, dry_run=dry_run)
    except RetentionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("\n".join(report.lines()))
    if schedule:
        job_id = schedule_purge(svc.redis)
        click.echo(f"scheduled the daily purge ({job_id})" if job_id else "a daily purge is already scheduled")


def scheduled_purge() -> dict[str, int]:
    """RQ job: schedule the next run, then purge with the configured retention."""
    svc = services()
    # The successor is scheduled first, so a failing purge does not end the daily chain.
    schedule_purge(svc.redis, PURGE_INTERVAL)
    settings = svc.settings
    policy = RetentionPolicy(settings.retention_days_voicemail, settings.retention_days_calls)
    return purge(svc.sessions, Path(settings.instance_path), policy).counts()


COMMANDS: list[click.Command] = [export, purge_command]
