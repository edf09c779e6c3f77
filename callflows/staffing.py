"""Staffing advice: how many peers each hour of the week needs to meet the service level (Erlang C).

The model (stated on the Reports page as well): callers who want a peer arrive at random and
independently (a Poisson process) at the rate measured for that hour of the week; handle
times (talk plus after-call work) are exponentially distributed around the measured average;
callers wait in one line for whichever peer is free first and nobody hangs up while waiting;
every peer on a (non-on-call) recurring shift takes calls. Real callers do give up, so Erlang C errs on the side of
more peers; with few calls an hour the measured rate is a rough guide, not a forecast.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.metrics import Metrics, Period
from models import ShiftTemplate

MAX_PEERS = 200  # a line this size would not be asking a tool like this
MINUTES_PER_WEEK = 7 * 24 * 60
# A recurring shift counts for an hour of the week when it covers at least this many of its minutes.
PLANNED_MIN_MINUTES = 30


def erlang_b(agents: int, traffic: float) -> float:
    """Probability that a call finds every one of ``agents`` busy with no line to wait in (Erlang B)."""
    blocking = 1.0
    for k in range(1, agents + 1):
        blocking = traffic * blocking / (k + traffic * blocking)
    return blocking


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a caller has to wait, with ``traffic`` Erlangs offered to ``agents`` peers (Erlang C)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0  # the line grows without end: everyone waits
    blocking = erlang_b(agents, traffic)
    return agents * blocking / (agents - traffic * (1 - blocking))


def service_level(agents: int, traffic: float, handle_s: float, target_s: float) -> float:
    """Share of callers answered within ``target_s`` seconds."""
    if traffic <= 0:
        return 1.0
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * target_s / handle_s)


def average_speed_of_answer(agents: int, traffic: float, handle_s: float) -> float:
    """Expected wait of all callers, in seconds (infinite when peers cannot keep up)."""
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return math.inf
    return erlang_c(agents, traffic) * handle_s / (agents - traffic)


def peers_needed(calls_per_hour: float, handle_s: float, target_share: float, target_s: float) -> int:
    """The fewest peers who answer ``target_share`` of callers within ``target_s`` seconds."""
    traffic = calls_per_hour * handle_s / 3600
    if traffic <= 0:
        return 0
    agents = max(1, math.floor(traffic) + 1)
    while agents < MAX_PEERS and service_level(agents, traffic, handle_s, target_s) < target_share:
        agents += 1
    return agents


def planned_week(session: Session) -> list[list[int]] | None:
    """Peers planned for every local weekday and hour of a typical week; None while there is no rota.

    The plan is the active recurring shifts (:class:`models.ShiftTemplate`), each counting its
    peers needed for every hour it covers at least half of. On-call (backup) shifts are left out:
    their peers are called in when a shift is unstaffed and do not take calls on the line.
    """
    templates = session.scalars(select(ShiftTemplate).where(ShiftTemplate.active.is_(True),
                                                            ShiftTemplate.on_call.is_(False))).all()
    if not templates:
        return None
    week = [[0] * 24 for _ in range(7)]
    for t in templates:
        start = t.weekday * 1440 + t.start_minute
        end = t.weekday * 1440 + t.end_minute + (1440 if t.end_minute <= t.start_minute else 0)
        for slot in range(7 * 24):
            covered = 0
            # The week wraps: a Sunday night shift runs into Monday morning.
            for shift_at in (start, start - MINUTES_PER_WEEK):
                covered += max(0, min(end + shift_at - start, slot * 60 + 60) - max(shift_at, slot * 60))
            if covered >= PLANNED_MIN_MINUTES:
                week[slot // 24][slot % 24] += t.peers_needed
    return week


def planned_peers(session: Session, weekday: int, hour: int) -> int | None:
    """Peers planned on shift for this local weekday (0 = Monday) and hour; None while no shift plan exists."""
    week = planned_week(session)
    return None if week is None else week[weekday][hour]


@dataclass(frozen=True)
class Advice:
    """One hour of the week: measured demand, the peers Erlang C asks for, and the peers planned."""

    weekday: int
    hour: int
    calls_per_hour: float
    handle_s: float
    traffic: float
    needed: int
    planned: int | None

    @property
    def short(self) -> int | None:
        """Peers missing from the plan (None when nothing is planned)."""
        return None if self.planned is None else max(0, self.needed - self.planned)


def hour_occurrences(period: Period, zone: ZoneInfo) -> list[list[int]]:
    """How many times each local weekday-hour falls in the period (a rate per hour needs it)."""
    counts = [[0] * 24 for _ in range(7)]
    moment = period.since.astimezone(zone).replace(minute=0, second=0, microsecond=0)
    end = period.until
    while moment < end:
        local = moment.astimezone(zone)
        counts[local.weekday()][local.hour] += 1
        moment = moment + timedelta(hours=1)
    return counts


def advise(session: Session, m: Metrics, period: Period, zone: ZoneInfo, target_share: float,
           target_s: float, default_wrap_s: float = 0.0) -> list[Advice]:
    """Advice for every hour of the week with measured demand or planned peers.

    Handle time is talk plus after-call work; before any wrap-up has been measured, the
    configured wrap-up (``default_wrap_s``, PEER_WRAPUP_SECONDS) stands in for it.
    """
    occurrences = hour_occurrences(period, zone)
    plan = planned_week(session)  # read once for the whole week
    base_talk = m.handle_time_avg
    wrap = m.after_call_work_avg if m.after_call_work_avg is not None else default_wrap_s
    out: list[Advice] = []
    for weekday in range(7):
        for hour in range(24):
            requests = m.requests_by_hour_of_week[weekday][hour]
            planned = None if plan is None else plan[weekday][hour]
            if not requests and not planned:
                continue
            talks = m.talks_by_hour_of_week[weekday][hour]
            talk = m.talk_by_hour_of_week[weekday][hour] / talks if talks else base_talk
            if talk is None:  # nobody answered in the whole period: no handle time to plan with
                continue
            handle = talk + wrap
            rate = requests / max(1, occurrences[weekday][hour])
            out.append(Advice(weekday, hour, rate, handle, rate * handle / 3600,
                              peers_needed(rate, handle, target_share, target_s), planned))
    return out

