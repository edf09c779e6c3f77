"""Erlang C against textbook values, and the staffing advice built from measured demand."""
from __future__ import annotations

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from callflows import metrics, shifts, staffing

ZONE = ZoneInfo("America/New_York")


def test_erlang_c_matches_exact_small_cases() -> None:
    # One server: the chance of waiting is the utilisation (M/M/1).
    assert staffing.erlang_c(1, 0.5) == pytest.approx(0.5)
    # Two servers, one Erlang: (1/2! * 2/1) / (1 + 1 + 1) = 1/3.
    assert staffing.erlang_c(2, 1.0) == pytest.approx(1 / 3)
    assert staffing.erlang_b(1, 1.0) == pytest.approx(0.5)
    assert staffing.erlang_c(3, 3.0) == 1.0 and staffing.erlang_c(3, 0.0) == 0.0


def test_erlang_c_matches_the_textbook_call_centre_example() -> None:
    # 100 calls in 30 minutes, 3-minute handle time (10 Erlangs), target 80 % answered in 20 s:
    # the standard worked example's table of agents, chance of waiting, service level and ASA.
    table = {n: (round(staffing.erlang_c(n, 10.0), 4), round(staffing.service_level(n, 10.0, 180, 20), 4),
                 round(staffing.average_speed_of_answer(n, 10.0, 180), 1)) for n in (11, 12, 13, 14)}
    assert table == {11: (0.6821, 0.3896, 122.8), 12: (0.4494, 0.6402, 40.4), 13: (0.2853, 0.7956, 17.1),
                     14: (0.1741, 0.8884, 7.8)}
    assert staffing.peers_needed(200, 180, 0.80, 20) == 14
    assert staffing.peers_needed(0, 180, 0.80, 20) == 0
    # A quiet line still needs one peer for its few calls.
    assert staffing.peers_needed(1, 600, 0.80, 30) == 1


def test_advice_per_hour_of_the_week_from_measured_demand(db) -> None:  # type: ignore[no-untyped-def]
    period = metrics.period_for_days(date(2026, 11, 2), date(2026, 11, 15), ZONE,
                                     datetime(2026, 11, 20, tzinfo=timezone.utc))
    # Two Mondays and two Tuesdays: Monday 10:00 had 40 requests (20 an hour), with 18 answered for 162 s each.
    m = metrics.Metrics(since="", until="", timezone=ZONE.key, service_level_seconds=20)
    m.requests_by_hour_of_week[0][10] = 400
    m.talks_by_hour_of_week[0][10] = 18
    m.talk_by_hour_of_week[0][10] = 18 * 162.0
    m.requests_by_hour_of_week[1][3] = 2
    m.handle_time_avg, m.after_call_work_avg = 300.0, 18.0
    assert staffing.hour_occurrences(period, ZONE)[0][10] == 2
    advice = staffing.advise(db, m, period, ZONE, 0.80, 20)
    assert [(a.weekday, a.hour) for a in advice] == [(0, 10), (1, 3)]
    monday = advice[0]
    # 200 calls an hour of 180 s (162 s talk + 18 s wrap-up): the textbook's 10 Erlangs and 14 peers.
    assert (monday.calls_per_hour, monday.handle_s, monday.traffic, monday.needed) == (200, 180, 10, 14)
    assert monday.planned is None and monday.short is None
    # An hour with no answered call plans with the period's average handle time (300 + 18 s).
    assert (advice[1].calls_per_hour, advice[1].handle_s, advice[1].needed) == (1, 318, 1)
    # Before any wrap-up is measured, the configured wrap-up time stands in for it.
    m.after_call_work_avg = None
    assert staffing.advise(db, m, period, ZONE, 0.80, 20, default_wrap_s=120)[1].handle_s == 420


def test_planned_peers_come_from_the_weekly_shift_rota(db) -> None:  # type: ignore[no-untyped-def]
    assert staffing.planned_peers(db, 0, 10) is None  # no rota yet: "no plan", not zero
    shifts.add_template(db, 0, 9 * 60, 13 * 60, 2, ["en"], False, None)  # Monday 09:00-13:00, 2 peers
    shifts.add_template(db, 0, 10 * 60 + 30, 12 * 60 + 15, 1, ["es"], False, None)  # 10:30-12:15, 1 peer
    shifts.add_template(db, 6, 22 * 60, 2 * 60, 1, ["en"], False, None)  # Sunday 22:00 to Monday 02:00
    shifts.add_template(db, 0, 9 * 60, 17 * 60, 3, ["en"], True, None)  # on call: backup, not counted
    retired = shifts.add_template(db, 0, 9 * 60, 17 * 60, 5, ["en"], False, None)
    assert shifts.retire_template(db, retired.id, None, datetime(2026, 11, 20, tzinfo=timezone.utc))
    monday = [staffing.planned_peers(db, 0, h) for h in range(24)]
    # The 10:30 shift counts for 10:00 (30 minutes of it) but not for 12:00 (15 minutes).
    assert monday == [1, 1, 0, 0, 0, 0, 0, 0, 0, 2, 3, 3, 2] + [0] * 11
    assert [staffing.planned_peers(db, 6, h) for h in (21, 22, 23)] == [0, 1, 1]


def test_advice_marks_the_hours_short_of_planned_peers(db) -> None:  # type: ignore[no-untyped-def]
    period = metrics.period_for_days(date(2026, 11, 2), date(2026, 11, 15), ZONE,
                                     datetime(2026, 11, 20, tzinfo=timezone.utc))
    m = metrics.Metrics(since="", until="", timezone=ZONE.key, service_level_seconds=20)
    m.requests_by_hour_of_week[0][10] = 400  # the textbook's 14 peers (see above)
    m.talks_by_hour_of_week[0][10] = 18
    m.talk_by_hour_of_week[0][10] = 18 * 162.0
    m.handle_time_avg, m.after_call_work_avg = 300.0, 18.0
    shifts.add_template(db, 0, 10 * 60, 12 * 60, 4, ["en"], False, None)  # Monday 10:00-12:00, 4 peers
    advice = staffing.advise(db, m, period, ZONE, 0.80, 20)
    # 10:00 needs 14 and has 4 planned; 11:00 has peers planned and no demand measured.
    assert [(a.weekday, a.hour, a.needed, a.planned, a.short) for a in advice] == [
        (0, 10, 14, 4, 10), (0, 11, 0, 4, 0)]
