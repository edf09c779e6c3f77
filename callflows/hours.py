"""Open hours, holidays and closures: is the line open now, and when does it open next.

Hours are wall-clock minutes in ``LINE_TIMEZONE`` per weekday (:class:`models.OpenHours`); a
period whose end is at or before its start runs past midnight into the next day, and belongs
to the day it starts on (a holiday closes the periods that start on it). With no hours
configured the line is open around the clock, as it always was; holidays and a manual closure
still close it. Times are resolved with :mod:`zoneinfo`, so daylight saving works: on the
night the clocks go forward a period that would start in the skipped hour starts when the
clock reaches the next real minute.

:class:`Schedule` is a pure value (tests build one by hand); :func:`load_schedule` reads it
from the database. Changes (:func:`close_now`, :func:`reopen`, :func:`set_hours`...) take the
staff user's id and add their audit entry in the same commit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, bindparam, cast, delete, literal, null, or_, select, union_all
from sqlalchemy.orm import Session

from callflows.settings import Settings
from callflows.times import aware
from models import AuditEntry, Closure, Holiday, OpenHours
from models.tables import utcnow

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
# How far ahead the next opening is looked for (a closure longer than this says "later").
LOOK_AHEAD_DAYS = 21
MINUTES_PER_DAY = 24 * 60


@dataclass(frozen=True)
class Period:
    """One weekly opening period: weekday (0 = Monday), local start and end minute."""

    weekday: int
    opens: int
    closes: int

    def label(self) -> str:
        """``Monday 09:00-17:00`` (``+1`` when it ends the next day)."""
        nxt = " (+1 day)" if self.closes <= self.opens else ""
        return f"{WEEKDAYS[self.weekday]} {hhmm(self.opens)}-{hhmm(self.closes)}{nxt}"


def hhmm(minute: int) -> str:
    """Minutes after midnight as ``HH:MM``."""
    return f"{minute // 60 % 24:02d}:{minute % 60:02d}" if minute < MINUTES_PER_DAY else "24:00"


def parse_hhmm(text: str) -> int:
    """``9``, ``09:30`` or ``24:00`` -> minutes after midnight; ValueError when unreadable."""
    hours, _colon, minutes = text.strip().partition(":")
    h, m = int(hours), int(minutes or 0)
    if not (0 <= h <= 24 and 0 <= m < 60) or (h == 24 and m):
        raise ValueError(f"{text!r} is not a time of day (HH:MM)")
    return h * 60 + m


def local_moment(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock minute on ``day`` (a skipped DST minute moves on to a real one)."""
    extra, minute = divmod(minute, MINUTES_PER_DAY)
    naive = datetime.combine(day + timedelta(days=extra), time(minute // 60, minute % 60))
    # Round-tripping through UTC turns a non-existent local time (the spring-forward gap) into
    # the real instant an hour on, and picks the first of an ambiguous (fall-back) pair.
    return naive.replace(tzinfo=zone).astimezone(timezone.utc)


@dataclass(frozen=True)
class Schedule:
    """Everything that decides whether the line is open: periods, holidays, a manual closure."""

    zone: ZoneInfo
    periods: tuple[Period, ...] = ()
    holidays: frozenset[date] = field(default_factory=frozenset)
    closed_manually: bool = False
    closure_until: datetime | None = None  # a manual closure that ends by itself

    def _closed_by_hand(self, moment: datetime) -> bool:
        if not self.closed_manually:
            return False
        return self.closure_until is None or moment < self.closure_until

    def _in_hours(self, moment: datetime) -> bool:
        local_day = moment.astimezone(self.zone).date()
        if not self.periods:
            return local_day not in self.holidays
        # A period that started yesterday may still run past midnight.
        for day in (local_day - timedelta(days=1), local_day):
            if day in self.holidays:
                continue
            for period in self.periods:
                if period.weekday != day.weekday():
                    continue
                start, end = self._bounds(day, period)
                if start <= moment < end:
                    return True
        return False

    def _bounds(self, day: date, period: Period) -> tuple[datetime, datetime]:
        closes = period.closes + (MINUTES_PER_DAY if period.closes <= period.opens else 0)
        return local_moment(day, period.opens, self.zone), local_moment(day, closes, self.zone)

    def is_open(self, moment: datetime) -> bool:
        """True when callers can reach a peer at ``moment`` (an aware datetime)."""
        return not self._closed_by_hand(moment) and self._in_hours(moment)

    def next_opening(self, now: datetime) -> datetime | None:
        """When the line opens next (``now`` when it is open); None when closed by hand with no end, or not soon."""
        if self.is_open(now):
            return now
        if self.closed_manually and self.closure_until is None:
            return None
        # The line can only open at one of these moments: a period's start, a local midnight
        # (after a holiday, on a line open around the clock) or the end of a closure.
        candidates = {now}
        if self.closure_until is not None and self.closure_until > now:
            candidates.add(self.closure_until)
        first = now.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(LOOK_AHEAD_DAYS + 2):
            day = first + timedelta(days=offset)
            candidates.add(local_moment(day, 0, self.zone))
            for period in self.periods:
                if period.weekday == day.weekday():
                    candidates.add(self._bounds(day, period)[0])
        horizon = now + timedelta(days=LOOK_AHEAD_DAYS)
        for moment in sorted(c for c in candidates if now <= c <= horizon):
            if self.is_open(moment):
                return moment
        return None

    def open_until(self, start: datetime, end: datetime) -> datetime | None:
        """The end of the line's last open stretch in [start, end) (``end`` when open to the end); None when never open."""
        # Openness only changes at a period's bounds, a local midnight (a holiday) or a closure's end.
        changes = {end}
        if self.closure_until is not None:
            changes.add(self.closure_until)
        day = start.astimezone(self.zone).date() - timedelta(days=1)
        while local_moment(day, 0, self.zone) <= end:
            changes.add(local_moment(day, 0, self.zone))
            for period in self.periods:
                if period.weekday == day.weekday():
                    changes.update(self._bounds(day, period))
            day += timedelta(days=1)
        for moment in sorted((c for c in changes if start < c <= end), reverse=True):
            if self.is_open(moment - OPEN_STEP):
                return moment
        return None


# Stretches are found to the second: a line open until 17:00 is open at 16:59:59.
OPEN_STEP = timedelta(seconds=1)


def _schedule_query() -> Any:
    """The whole schedule in one statement (one round trip): every period, every holiday, the closure in force.

    A UNION ALL of three selects with the same columns; ``kind`` says which a row is: 0 a period
    (weekday, opens, closes), 1 a holiday (day), 2 the manual closure in force at ``now`` (its
    end, if set). Built once: the line reads it on every call that hears a menu.
    """
    hours_t, holidays_t, closures_t = (t.__table__ for t in (OpenHours, Holiday, Closure))
    no_int, no_day = cast(null(), Integer), cast(null(), holidays_t.c.day.type)
    no_end = cast(null(), closures_t.c.ended_at.type)
    now = bindparam("now", type_=closures_t.c.started_at.type)
    in_force = (select(closures_t.c.id, closures_t.c.ended_at)
                .where(closures_t.c.started_at <= now, or_(closures_t.c.ended_at.is_(None), closures_t.c.ended_at > now))
                .order_by(closures_t.c.started_at.desc(), closures_t.c.id.desc()).limit(1).subquery())
    return union_all(
        select(literal(0).label("kind"), hours_t.c.weekday.label("weekday"), hours_t.c.opens_minute.label("opens"),
               hours_t.c.closes_minute.label("closes"), no_day.label("day"), no_end.label("until")),
        select(literal(1), no_int, no_int, no_int, holidays_t.c.day, no_end),
        select(literal(2), no_int, no_int, no_int, no_day, in_force.c.ended_at),
    )


SCHEDULE = _schedule_query()


def schedule_of(rows: Iterable[Any], zone: ZoneInfo) -> Schedule:
    """The :class:`Schedule` of rows of :data:`SCHEDULE` (``kind``, ``weekday``, ``opens``, ``closes``, ``day``, ``until``)."""
    periods: list[Period] = []
    holidays: set[date] = set()
    closed, until = False, None
    for row in rows:
        if row.kind == 0:
            periods.append(Period(row.weekday, row.opens, row.closes))
        elif row.kind == 1:
            holidays.add(row.day)
        else:
            closed, until = True, aware(row.until)
    return Schedule(zone=zone, periods=tuple(sorted(periods, key=lambda p: (p.weekday, p.opens, p.closes))),
                    holidays=frozenset(holidays), closed_manually=closed, closure_until=until)


def load_schedule(session: Session, zone: ZoneInfo, now: datetime | None = None) -> Schedule:
    """The schedule as the database holds it now (the open manual closure, if any, included), in one query."""
    return schedule_of(session.connection().execute(SCHEDULE, {"now": now or utcnow()}), zone)


def open_closure(session: Session, now: datetime) -> Closure | None:
    """The manual closure in force at ``now`` (one whose set end is still ahead counts), if any."""
    return session.scalar(select(Closure).where(Closure.started_at <= now,
                                                or_(Closure.ended_at.is_(None), Closure.ended_at > now))
                          .order_by(Closure.started_at.desc(), Closure.id.desc()).limit(1))


def is_open(session: Session, settings: Settings, now: datetime) -> bool:
    """True when the line takes live calls at ``now``."""
    return load_schedule(session, settings.zone, now).is_open(now)


def next_opening(session: Session, settings: Settings, now: datetime) -> datetime | None:
    """When the line opens next (``now`` when open; None when closed by hand until further notice)."""
    return load_schedule(session, settings.zone, now).next_opening(now)


def window_span(schedule: Schedule, window_hours: tuple[int, int], after: datetime) -> tuple[datetime, datetime] | None:
    """The first day's part of a daily window (local start and end hour) in which the line is open, from ``after`` on.

    Returned as (the first open moment, the end of the last open stretch) in the window; None
    when the line is not open in that window on any day of the next two weeks.
    """
    zone = schedule.zone
    start_h, end_h = window_hours
    first = after.astimezone(zone).date() - timedelta(days=1)
    opening: datetime | None = None
    for days in range(LOOK_AHEAD_DAYS + 2):
        day = first + timedelta(days=days)
        # The same wall-clock window each day (daylight saving may change its UTC offset).
        start = local_moment(day, start_h * 60, zone)
        end = local_moment(day, end_h * 60 + (MINUTES_PER_DAY if end_h <= start_h else 0), zone)
        if end <= after:
            continue
        if opening is None or opening < max(start, after):  # else the opening found before is still the next
            opening = schedule.next_opening(max(start, after))
            if opening is None:  # closed by hand until further notice, or for longer than the look-ahead
                return None
        if opening >= end:
            continue
        last = schedule.open_until(opening, end)
        if last is not None:
            return opening, last
    return None


def windows_open(session: Session, settings: Settings, now: datetime) -> list[str]:
    """The callback windows of the settings in which the line opens within two weeks (those a caller may be offered)."""
    schedule = load_schedule(session, settings.zone, now)
    return [name for name, hours_ in settings.windows.items() if window_span(schedule, hours_, now) is not None]


def defer_to_opening(session: Session, settings: Settings, not_before: datetime, not_after: datetime,
                     window_hours: tuple[int, int] | None = None) -> tuple[datetime, datetime]:
    """A callback window, kept to when the line is open in it.

    "As soon as a peer is free" (no ``window_hours``) that starts while the line is closed moves
    to the next opening, with the same length. A window the caller chose as safe (its local start
    and end hours) is never stretched: the first such window, up to two weeks ahead, in which
    the line opens, from the opening to the end of the line's last open stretch in it (so the
    caller is never promised a time the line is closed); when there is none (the caller is not
    offered such a window, but the hours may change meanwhile), the window stays as asked.
    """
    schedule = load_schedule(session, settings.zone, not_before)
    if window_hours is not None:
        return window_span(schedule, window_hours, not_before) or (not_before, not_after)
    if schedule.is_open(not_before):
        return not_before, not_after
    opening = schedule.next_opening(not_before)
    if opening is None:
        return not_before, not_after
    return opening, max(not_after, opening + (not_after - not_before))


# Changes (each one audit-logged in the same commit) ---------------------------------------


def _audit(session: Session, user_id: int | None, action: str, detail: str, target_id: int | None = None) -> None:
    session.add(AuditEntry(staff_user_id=user_id, action=action, target_type="hours", target_id=target_id,
                           detail=detail[:500]))


def close_now(session: Session, reason: str, user_id: int | None, now: datetime,
              until: datetime | None = None) -> Closure:
    """Close the line now with a reason (until ``until``, or until reopened); an open closure is kept, reason updated."""
    reason = reason.strip()[:200]
    if not reason:
        raise ValueError("a closure needs a reason")
    closure = open_closure(session, now)
    if closure is None:
        closure = Closure(reason=reason, started_at=now, started_by_id=user_id, ended_at=until)
        session.add(closure)
    else:
        closure.reason = reason
        closure.ended_at = until
    session.flush()
    _audit(session, user_id, "line_closed", f"{reason}" + (f" (until {until.isoformat()})" if until else ""),
           closure.id)
    session.commit()
    return closure


def reopen(session: Session, user_id: int | None, now: datetime) -> bool:
    """End the manual closure now; False when the line was not closed by hand."""
    closure = open_closure(session, now)
    if closure is None:
        return False
    closure.ended_at = now
    closure.ended_by_id = user_id
    _audit(session, user_id, "line_opened", f"closure {closure.id} ended", closure.id)
    session.commit()
    return True


def set_hours(session: Session, periods: list[Period], user_id: int | None) -> None:
    """Replace the weekly hours (an empty list: open around the clock)."""
    for period in periods:
        if not (0 <= period.weekday <= 6 and 0 <= period.opens < MINUTES_PER_DAY
                and 0 <= period.closes <= MINUTES_PER_DAY):
            raise ValueError(f"not a valid opening period: {period}")
    session.execute(delete(OpenHours))
    session.add_all(OpenHours(weekday=p.weekday, opens_minute=p.opens, closes_minute=p.closes) for p in periods)
    _audit(session, user_id, "hours_set", "; ".join(p.label() for p in periods) or "open around the clock")
    session.commit()


def add_holiday(session: Session, day: date, name: str, user_id: int | None) -> Holiday:
    """Close the line all day on a local date (an existing holiday on that day is renamed)."""
    holiday = holiday_on(session, day)
    if holiday is None:
        holiday = Holiday(day=day, name=name.strip()[:80] or "Holiday")
        session.add(holiday)
    else:
        holiday.name = name.strip()[:80] or holiday.name
    session.flush()
    _audit(session, user_id, "holiday_added", f"{day.isoformat()} {holiday.name}", holiday.id)
    session.commit()
    return holiday


def holiday_on(session: Session, day: date) -> Holiday | None:
    """The holiday on a local date, if there is one (at most one: adding it again renames it)."""
    return session.scalar(select(Holiday).where(Holiday.day == day))


def remove_holiday(session: Session, holiday_id: int, user_id: int | None) -> bool:
    """Remove a holiday; False when there is none with that id."""
    holiday = session.get(Holiday, holiday_id)
    if holiday is None:
        return False
    _audit(session, user_id, "holiday_removed", f"{holiday.day.isoformat()} {holiday.name}", holiday.id)
    session.delete(holiday)
    session.commit()
    return True


def describe(session: Session, settings: Settings, now: datetime) -> list[str]:
    """The hours, holidays and closure as lines of text (``peerline hours show``, the staff page)."""
    schedule = load_schedule(session, settings.zone, now)
    lines = [f"time zone: {settings.line_timezone}"]
    if schedule.is_open(now):
        lines.append("the line is OPEN now")
    else:
        opening = schedule.next_opening(now)
        when = opening.astimezone(settings.zone).strftime("%a %Y-%m-%d %H:%M") if opening else "when reopened"
        lines.append(f"the line is CLOSED now; it opens {when}")
    closure = open_closure(session, now)
    if closure is not None:
        until = aware(closure.ended_at)
        lines.append(f"closed by hand: {closure.reason}" + (f" (until {until.astimezone(settings.zone):%Y-%m-%d %H:%M})"
                                                             if until else ""))
    lines.append("hours: " + ("; ".join(p.label() for p in schedule.periods) or "open around the clock"))
    lines.append(holidays_ahead(session, now.astimezone(settings.zone).date()))
    return lines


def holidays_ahead(session: Session, today: date) -> str:
    """``holidays: 2026-12-25 (Christmas), ...`` from ``today`` (a local date) on, or ``holidays: none ahead``."""
    ahead = session.scalars(select(Holiday).where(Holiday.day >= today).order_by(Holiday.day)).all()
    return "holidays: " + (", ".join(f"{h.day.isoformat()} ({h.name})" for h in ahead) or "none ahead")
