"""``peerline hours ...``: show, close and reopen the line, set weekly hours and holidays.

Every change is audit-logged (by the rules in :mod:`callflows.hours`) with no staff user: the
command line is the operator's own.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import click
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows import hours, shifts
from callflows.times import aware
from ivr.services import services
from models import Peer, Shift, ShiftSignup, utcnow

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
@click.argument("name", required=False)
@click.option("--remove", is_flag=True, help="Remove the holiday on DAY instead: the usual hours apply that day.")
@with_appcontext
def holiday(day: datetime, name: str | None, remove: bool) -> None:
    """Close the line all day on DAY (YYYY-MM-DD, local), named NAME (default "Holiday"); or --remove it."""
    svc = services()
    with svc.sessions() as session:
        if not remove:
            added = hours.add_holiday(session, day.date(), name or "Holiday", None)
            click.echo(f"closed all day on {day.date().isoformat()} ({added.name})")
            return
        if name is not None:  # "--remove DAY NAME" may be a typo for adding: change nothing
            raise click.ClickException("--remove takes only the date: peerline hours holiday --remove YYYY-MM-DD")
        found = hours.holiday_on(session, day.date())
        if found is None:
            raise click.ClickException(f"no holiday on {day.date().isoformat()}")
        label = f"{found.day.isoformat()} ({found.name})"
        hours.remove_holiday(session, found.id, None)  # audit-logged as on the Hours page
        click.echo(f"removed the holiday on {label}")
        click.echo(hours.holidays_ahead(session, utcnow().astimezone(svc.settings.zone).date()))


# Demo data (``peerline seed-demo``, ``make run``) ---------------------------------------------

# Three eight-hour shifts a day, every day (local time): who covers them in the demo, by name.
DEMO_SHIFTS = ((0, 8 * 60, "Jordan"), (8 * 60, 16 * 60, "Sam"), (16 * 60, 0, "Rosa"))
DEMO_ON_CALL = (8 * 60, 20 * 60)  # a daytime on-call backup shift, covered by Rosa


def seed_demo_operations(session: Session, zone: ZoneInfo, now: datetime) -> int:
    """Hours around the clock every day and a week of shifts covered by the demo peers; returns shifts made.

    The line is open whenever the tour runs; ``peerline hours close --reason TEXT`` shows what
    a caller hears when it is not.
    """
    hours.set_hours(session, [hours.Period(day, 0, hours.MINUTES_PER_DAY) for day in range(7)], None)
    for day in range(7):
        for start, end, _name in DEMO_SHIFTS:
            shifts.add_template(session, day, start, end, 1, ["en", "es"] if _name == "Rosa" else ["en"], False, None)
        shifts.add_template(session, day, DEMO_ON_CALL[0], DEMO_ON_CALL[1], 1, ["en", "es"], True, None)
    made = shifts.ensure_shifts(session, zone, now, days=7)
    peers = {p.display_name: p for p in session.scalars(select(Peer))}
    for shift in session.scalars(select(Shift).where(Shift.starts_at < now + timedelta(days=7))):
        local = (aware(shift.starts_at) or now).astimezone(zone)
        minute = local.hour * 60 + local.minute
        name = "Rosa" if shift.on_call else next((n for s, _e, n in DEMO_SHIFTS if s == minute), None)
        peer = peers.get(name or "")
        if peer is not None:
            session.add(ShiftSignup(shift_id=shift.id, peer_id=peer.id))
    session.commit()
    return made
