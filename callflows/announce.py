"""What callers and peers hear about the line's hours and shifts, in their language.

Kept apart from :mod:`callflows.hours` so that the callbacks (which defer a window to the
next opening) and the hours do not import each other: this module uses both.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from callflows import callers
from callflows.callbacks import spoken_time
from callflows.calls import caller_for_call
from callflows.loader import Flow
from callflows.settings import Settings
from callflows.times import aware


def spoken_day(moment: datetime, now: datetime, settings: Settings, flow: Flow) -> str:
    """The day of ``moment`` as people say it: "today", "tomorrow", "on Monday" ("hoy", "mañana", "el lunes")."""
    zone = settings.zone
    days = (moment.astimezone(zone).date() - now.astimezone(zone).date()).days
    if days <= 0:
        return flow.text("day_today")
    if days == 1:
        return flow.text("day_tomorrow")
    return flow.text(f"weekday_{moment.astimezone(zone).weekday()}")


def spoken_day_time(moment: datetime, now: datetime, settings: Settings, flow: Flow) -> str:
    """A moment as people say it relative to today: "tomorrow at 9 am", "el lunes a las 9 de la mañana"."""
    zone = settings.zone
    local = moment.astimezone(zone)
    midnight = (local.hour, local.minute) == (0, 0)
    # "Tomorrow at 12 am", said on a holiday afternoon, means tonight, and few hear it so: midnight
    # is said as the end of the day before ("tonight at midnight", "el viernes a la medianoche").
    day_of = moment - timedelta(minutes=1) if midnight else moment
    days = (day_of.astimezone(zone).date() - now.astimezone(zone).date()).days
    day = spoken_day(day_of, now, settings, flow)
    if not midnight:
        when = flow.text("when_at", day=day, time=spoken_time(moment, settings, flow))
    else:
        when = flow.text("midnight_tonight") if days <= 0 else flow.text("when_midnight", day=day)
    # Beyond a week a weekday alone is ambiguous: say how many days away it is too.
    return flow.text("when_later", days=days, when=when) if days >= 7 else when


def spoken_opening(moment: datetime | None, now: datetime, settings: Settings, flow: Flow) -> str:
    """"The line opens again tomorrow at 9 am." (or, closed until further notice, to call again later)."""
    if moment is None:
        return flow.text("closed_unknown")
    return flow.text("closed_opens", when=spoken_day_time(moment, now, settings, flow))


def blocked_notice(session: Session, settings: Settings, flow: Flow, call_sid: str, now: datetime) -> str | None:
    """For a blocked caller: "calls from this number cannot be put through to a peer, until ..." (else None)."""
    caller = caller_for_call(session, call_sid)
    row = callers.active_block(session, caller.id, now) if caller is not None and caller.id is not None else None
    if row is None:
        return None
    return flow.text("blocked", when=spoken_day_time(aware(row.expires_at) or now, now, settings, flow))
