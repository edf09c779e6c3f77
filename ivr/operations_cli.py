"""``peerline hours ...``: show, close and reopen the line, set weekly hours and holidays.

Every change is audit-logged (by the rules in :mod:`callflows.hours`) with no staff user: the
command line is the operator's own.
"""
from __future__ import annotations

from datetime import datetime, timezone

import click
from flask.cli import with_appcontext

from callflows import hours
from ivr.services import services
from models import utcnow

DAY_NAMES = {name[:3].lower(): index for index, name in enumerate(hours.WEEKDAYS)}


@click.group("hours")
def hours_group() -> None:
    """The line's open hours, holidays and closures."""


@hours_group.command("show")
@with_appcontext
def show() -> None:
    """Say whether the line is open, when it opens next, the hours and the holidays ahead."""
    svc = services()
    with svc.sessions() as session:
        click.echo("\n".join(hours.describe(session, svc.settings, utcnow())))


def _local_time(text: str) -> datetime:
    """``YYYY-MM-DD HH:MM`` in the line's time zone, as UTC."""
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise click.BadParameter("want YYYY-MM-DD HH:MM (in LINE_TIMEZONE)") from exc
    return naive.replace(tzinfo=services().settings.zone).astimezone(timezone.utc)


@hours_group.command("close")
@click.option("--reason", required=True, help="Why the line is closed (staff see it; callers never hear it).")
@click.option("--until", "until", default=None, help="Reopen by itself at YYYY-MM-DD HH:MM (LINE_TIMEZONE).")
@with_appcontext
def close(reason: str, until: str | None) -> None:
    """Close the line now: callers hear when it opens next and keep stories, messages, callbacks and 9."""
    if not reason.strip():
        raise click.ClickException("give a reason: --reason TEXT")
    svc = services()
    now = utcnow()
    end = _local_time(until) if until else None
    if end is not None and end <= now:
        raise click.ClickException("--until must be in the future")
    with svc.sessions() as session:
        hours.close_now(session, reason, None, now, end)
        click.echo("the line is closed" + (f" until {until}" if until else " until `peerline hours open`"))


@hours_group.command("open")
@with_appcontext
def reopen() -> None:
    """End a manual closure now (the weekly hours and holidays still apply)."""
    svc = services()
    with svc.sessions() as session:
        if hours.reopen(session, None, utcnow()):
            click.echo("the manual closure is over")
        else:
            click.echo("the line was not closed by hand")
        click.echo("\n".join(hours.describe(session, svc.settings, utcnow())[1:2]))


def parse_period(text: str) -> hours.Period:
    """``mon=09:00-17:00`` (or ``fri=20:00-02:00``, past midnight) -> a Period."""
    day, _eq, span = text.partition("=")
    start, _dash, end = span.partition("-")
    weekday = DAY_NAMES.get(day.strip().lower()[:3])
    if weekday is None or not end:
        raise click.BadParameter(f"{text!r}: want DAY=HH:MM-HH:MM, e.g. mon=09:00-17:00")
    try:
        return hours.Period(weekday, hours.parse_hhmm(start), hours.parse_hhmm(end))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r}: {exc}") from exc


@hours_group.command("set")
@click.argument("periods", nargs=-1)
@with_appcontext
def set_hours(periods: tuple[str, ...]) -> None:
    """Replace the weekly hours: ``mon=09:00-17:00 tue=09:00-17:00 ...``; none at all: open around the clock."""
    parsed = [parse_period(p) for p in periods]
    svc = services()
    with svc.sessions() as session:
        hours.set_hours(session, parsed, None)
        click.echo("\n".join(hours.describe(session, svc.settings, utcnow())))


@hours_group.command("holiday")
@click.argument("day", type=click.DateTime(["%Y-%m-%d"]))
@click.argument("name", default="Holiday")
@with_appcontext
def holiday(day: datetime, name: str) -> None:
    """Close the line all day on DAY (YYYY-MM-DD, local)."""
    svc = services()
    with svc.sessions() as session:
        hours.add_holiday(session, day.date(), name, None)
        click.echo(f"closed all day on {day.date().isoformat()} ({name})")
