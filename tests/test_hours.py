"""Open hours, holidays and closures: the rules across midnight and daylight saving, what a
caller hears when the line is closed (and keeps every safe option), the command line, the audit log.

Real SQL and Redis; the phone network stands in for Twilio's REST API.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callflows import hours
from callflows.hours import Period, Schedule
from models import AuditEntry, CallbackRequest, Closure, utcnow
from models.tables import PeerRequest
from tests.factories import make_caller, make_peer
from tests.helpers import TestCaller

NY = ZoneInfo("America/New_York")
UTC = timezone.utc
MON, TUE, SAT, SUN = 0, 1, 5, 6


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    """A wall-clock time in New York as UTC."""
    return datetime(y, mo, d, h, mi, tzinfo=NY).astimezone(UTC)


# The rules ----------------------------------------------------------------------------------


def test_no_hours_means_open_around_the_clock_but_holidays_and_closures_close_it() -> None:
    now = at(2026, 12, 24, 23, 30)
    assert Schedule(NY).is_open(now)
    assert Schedule(NY).next_opening(now) == now
    christmas = Schedule(NY, holidays=frozenset({date(2026, 12, 25)}))
    assert christmas.is_open(now)
    assert not christmas.is_open(at(2026, 12, 25, 0, 0))
    assert christmas.next_opening(at(2026, 12, 25, 10)) == at(2026, 12, 26, 0, 0)
    assert Schedule(NY, closed_manually=True).next_opening(now) is None
    until = at(2026, 12, 25, 8)
    assert Schedule(NY, closed_manually=True, closure_until=until).next_opening(now) == until


def test_a_night_period_runs_past_midnight_and_belongs_to_the_day_it_starts() -> None:
    # Friday 20:00 to Saturday 02:00 (2026-11-27 is a Friday).
    night = Schedule(NY, periods=(Period(4, 20 * 60, 2 * 60),))
    assert not night.is_open(at(2026, 11, 27, 19, 59))
    assert night.is_open(at(2026, 11, 27, 20, 0))
    assert night.is_open(at(2026, 11, 28, 1, 59))
    assert not night.is_open(at(2026, 11, 28, 2, 0))
    assert night.next_opening(at(2026, 11, 28, 2, 0)) == at(2026, 12, 4, 20, 0)
    # A holiday on Friday closes the whole night that starts on it, past midnight too.
    holiday = Schedule(NY, periods=night.periods, holidays=frozenset({date(2026, 11, 27)}))
    assert not holiday.is_open(at(2026, 11, 28, 1, 0))
    assert holiday.next_opening(at(2026, 11, 27, 21)) == at(2026, 12, 4, 20, 0)


def test_spring_forward_a_period_starting_in_the_skipped_hour_opens_at_the_next_real_minute() -> None:
    # 2026-03-08: New York clocks go from 02:00 EST to 03:00 EDT. A Sunday 02:30-10:00 period.
    spring = Schedule(NY, periods=(Period(SUN, 2 * 60 + 30, 10 * 60),))
    saturday_night = at(2026, 3, 7, 23, 0)
    opening = spring.next_opening(saturday_night)
    assert opening == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)  # 03:30 EDT, 02:30 EST by the old clock
    assert opening.astimezone(NY).strftime("%H:%M %Z") == "03:30 EDT"
    assert spring.is_open(datetime(2026, 3, 8, 13, 59, tzinfo=UTC))  # 09:59 EDT
    assert not spring.is_open(datetime(2026, 3, 8, 14, 0, tzinfo=UTC))  # 10:00 EDT


def test_fall_back_a_night_period_lasts_an_hour_longer_by_the_clock() -> None:
    # 2026-11-01: 02:00 EDT becomes 01:00 EST. Saturday 20:00 to Sunday 02:00 is 7 real hours.
    fall = Schedule(NY, periods=(Period(SAT, 20 * 60, 2 * 60),))
    start = at(2026, 10, 31, 20, 0)
    assert start == datetime(2026, 11, 1, 0, 0, tzinfo=UTC)
    assert fall.is_open(datetime(2026, 11, 1, 6, 30, tzinfo=UTC))  # 01:30 EST, the second 01:30
    assert fall.is_open(datetime(2026, 11, 1, 6, 59, tzinfo=UTC))
    assert not fall.is_open(datetime(2026, 11, 1, 7, 0, tzinfo=UTC))  # 02:00 EST


def test_closures_across_daylight_saving_and_midnight_and_what_callers_hear(svc) -> None:  # type: ignore[no-untyped-def]
    from callflows import load_flows
    from callflows.announce import spoken_opening

    flows = load_flows()
    settings = svc.settings.replace(line_timezone="America/New_York")
    # A holiday on the line open around the clock: it opens again at midnight, said as the end of the day.
    thanksgiving = Schedule(NY, holidays=frozenset({date(2026, 11, 26)}))
    now = at(2026, 11, 26, 14)
    opening = thanksgiving.next_opening(now)
    assert opening == at(2026, 11, 27, 0)
    assert spoken_opening(opening, now, settings, flows["en"]) == "The line opens again tonight at midnight."
    assert spoken_opening(opening, now, settings, flows["es"]) == ("La línea abre otra vez esta noche a la "
                                                                   "medianoche.")
    assert spoken_opening(opening, at(2026, 11, 25, 14), settings, flows["en"]) == (
        "The line opens again tomorrow night at midnight.")
    # A holiday on the Sunday the clocks go forward is 23 real hours long; it ends at Monday's midnight (EDT).
    spring = Schedule(NY, holidays=frozenset({date(2027, 3, 14)}))
    assert spring.is_open(at(2027, 3, 13, 23, 59))
    assert not spring.is_open(datetime(2027, 3, 14, 5, 0, tzinfo=UTC))  # 00:00 EST
    assert spring.next_opening(datetime(2027, 3, 14, 12, tzinfo=UTC)) == datetime(2027, 3, 15, 4, 0, tzinfo=UTC)
    # A closure by hand until 1:30 on the night the clocks go back ends at the first 1:30 (EDT), said as such.
    until = at(2026, 11, 1, 1, 30)
    assert until == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    storm = Schedule(NY, closed_manually=True, closure_until=until)
    saturday = at(2026, 10, 31, 22)
    assert not storm.is_open(datetime(2026, 11, 1, 5, 29, tzinfo=UTC))
    assert storm.is_open(until) and storm.next_opening(saturday) == until
    assert spoken_opening(until, saturday, settings, flows["en"]) == "The line opens again tomorrow at 1:30 am."
    assert spoken_opening(at(2026, 11, 2, 9), saturday, settings, flows["es"]) == (
        "La línea abre otra vez el lunes a las 9 de la mañana.")


def test_hours_are_parsed_and_labelled() -> None:
    assert hours.parse_hhmm("9") == 540
    assert hours.parse_hhmm("24:00") == 1440
    with pytest.raises(ValueError):
        hours.parse_hhmm("25:00")
    assert Period(4, 1200, 120).label() == "Friday 20:00-02:00 (+1 day)"


# Changes are audit-logged; the command line -----------------------------------------------------


def test_cli_close_show_open_are_audit_logged(runner, db, svc) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["hours", "show"])
    assert result.exit_code == 0, result.output
    assert "the line is OPEN now" in result.output
    assert "hours: open around the clock" in result.output
    result = runner.invoke(args=["hours", "close", "--reason", "Staff training"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "the line is closed until `peerline hours open`"
    result = runner.invoke(args=["hours", "show"])
    assert "the line is CLOSED now; it opens when reopened" in result.output
    assert "closed by hand: Staff training" in result.output
    result = runner.invoke(args=["hours", "open"])
    assert result.output.splitlines() == ["the manual closure is over", "the line is OPEN now"]
    result = runner.invoke(args=["hours", "set", "mon=09:00-17:00", "fri=20:00-02:00"])
    assert result.exit_code == 0, result.output
    assert "hours: Monday 09:00-17:00; Friday 20:00-02:00 (+1 day)" in result.output
    result = runner.invoke(args=["hours", "set", "funday=09:00-17:00"])
    assert result.exit_code != 0 and "want DAY=HH:MM-HH:MM" in result.output
    result = runner.invoke(args=["hours", "close", "--reason", " "])
    assert result.exit_code != 0 and "give a reason" in result.output
    actions = [(a.action, a.detail) for a in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert [a for a, _ in actions] == ["line_closed", "line_opened", "hours_set"]
    assert actions[0][1] == "Staff training"


def test_cli_shows_holidays_by_name_and_removes_one_audit_logged(runner, db, svc) -> None:  # type: ignore[no-untyped-def]
    day = utcnow().astimezone(svc.settings.zone).date() + timedelta(days=30)
    later = day + timedelta(days=7)
    assert runner.invoke(args=["hours", "holiday", day.isoformat(), "Founders' day"]).exit_code == 0
    assert runner.invoke(args=["hours", "holiday", later.isoformat()]).exit_code == 0
    result = runner.invoke(args=["hours", "show"])
    assert f"holidays: {day} (Founders' day), {later} (Holiday)" in result.output.splitlines()
    result = runner.invoke(args=["hours", "holiday", "--remove", day.isoformat()])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [f"removed the holiday on {day} (Founders' day)",
                                          f"holidays: {later} (Holiday)"]
    result = runner.invoke(args=["hours", "holiday", "--remove", day.isoformat()])
    assert result.exit_code != 0 and f"no holiday on {day}" in result.output
    result = runner.invoke(args=["hours", "holiday", "--remove", later.isoformat(), "Holiday"])
    assert result.exit_code != 0 and "--remove takes only the date" in result.output
    assert f"{later} (Holiday)" in runner.invoke(args=["hours", "show"]).output  # not removed by a mistyped command
    entries = [(a.action, a.detail, a.staff_user_id) for a in db.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert entries == [("holiday_added", f"{day} Founders' day", None), ("holiday_added", f"{later} Holiday", None),
                       ("holiday_removed", f"{day} Founders' day", None)]


# What a caller hears ----------------------------------------------------------------------------


@pytest.fixture
def closed_until_tomorrow_9(svc, db):  # type: ignore[no-untyped-def]
    """A manual closure (the line is otherwise open around the clock) that ends tomorrow at 9 am local time."""
    now = utcnow()
    tomorrow = (now.astimezone(svc.settings.zone) + timedelta(days=1)).date()
    until = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 9, tzinfo=svc.settings.zone).astimezone(UTC)
    hours.close_now(db, "Holiday", None, now, until)
    return until


def test_a_closed_line_says_when_it_opens_and_keeps_the_safe_options(client, svc, db,  # type: ignore[no-untyped-def]
                                                                     closed_until_tomorrow_9) -> None:
    make_peer(db, svc.vault, phone="+15555550301", status="available")
    make_caller(db, svc.vault, "+15555550177", language="en")
    caller = TestCaller(client, number="+15555550177")
    caller.call()
    assert caller.said == ("Welcome to Peer Line. You are not alone. This call is free, and you do not have to "
                           "give your name. Peer Line is closed right now, so no peer can answer live. "
                           "The line opens again tomorrow at 9 am.")
    caller.follow()
    assert caller.said.startswith("While the line is closed, you can still choose. To hear stories from peers, "
                                  "press 1. To get a call back when the line opens, press 2. To leave a message, "
                                  "press 3. To go back, press 5.")
    caller.press("5")  # the main menu is there, but a peer is not
    caller.press("1")
    assert caller.said.startswith("Peer Line is closed right now, so no peer can answer live. "
                                  "The line opens again tomorrow at 9 am. While the line is closed")
    assert db.scalars(select(PeerRequest)).all() == []  # nobody is put on hold for a peer who is not coming
    caller.press("9")
    dial = caller.twiml.find("Dial")
    assert dial is not None and dial.findtext("Number") == "988"


def test_a_closed_line_still_plays_stories_and_takes_a_message(client, svc, db,  # type: ignore[no-untyped-def]
                                                             closed_until_tomorrow_9) -> None:
    make_caller(db, svc.vault, "+15555550186", language="en")
    caller = TestCaller(client, number="+15555550186")
    caller.call()
    caller.follow()
    caller.press("1")
    assert caller.said.startswith("Which stories would you like to hear?")
    caller.press("5")  # the stories go back to the main menu, where "talk with a peer" is the closed line's choices
    assert caller.said.startswith("What would you like to do?")
    caller.press("1")
    assert "While the line is closed, you can still choose." in caller.said
    caller.press("3")
    assert caller.said.startswith("You can leave a message for our peer team.")
    caller.post(caller.twiml.find("Record").get("action"), RecordingSid="RE" + "c" * 32, RecordingDuration="9",
                Digits="#")
    # Nobody promises "soon" while the line is closed: a supervisor checks messages, maybe not before it opens.
    assert caller.said == ("Thank you. Your message is saved. The line is closed now, so our team may not check it "
                           "until the line opens. Thank you for calling Peer Line. Take care. If you ever feel "
                           "unsafe, call or text 9 8 8, any time.")
    spanish = TestCaller(client, number="+15555550191")
    spanish.call()
    spanish.press("2")  # español: the closed line's menu
    spanish.press("3")
    spanish.post(spanish.twiml.find("Record").get("action"), RecordingSid="RE" + "d" * 32, RecordingDuration="9",
                 Digits="#")
    assert spanish.said.startswith("Gracias. Su mensaje está guardado. La línea está cerrada ahora, así que puede "
                                   "que nuestro equipo no lo revise hasta que abra. Gracias por llamar")


def test_a_callback_asked_for_while_closed_is_made_at_the_next_opening(client, svc, db,  # type: ignore[no-untyped-def]
                                                                       closed_until_tomorrow_9) -> None:
    make_caller(db, svc.vault, "+15555550178", language="en")
    caller = TestCaller(client, number="+15555550178")
    caller.call()
    caller.follow()
    caller.press("2")
    caller.press("1")  # the number is right
    caller.press("1")  # as soon as a peer is free
    caller.press("2")  # no message
    assert caller.said.startswith("Thank you. We will call you back tomorrow at 9 am, from this line's number.")
    cb = db.scalars(select(CallbackRequest)).one()
    assert cb.status == "pending"
    assert cb.not_before.replace(tzinfo=UTC) == closed_until_tomorrow_9
    assert cb.due_at.replace(tzinfo=UTC) == closed_until_tomorrow_9


def test_a_callback_put_off_to_the_next_opening_shows_its_day_to_peers(client, svc, db, dashboard_data,  # type: ignore[no-untyped-def]
                                                                        closed_until_tomorrow_9) -> None:
    from tests.test_dashboard import sign_in

    caller = TestCaller(client, number="+15555550188")
    caller.call()
    caller.press("1")  # English
    caller.press("2")  # a call back when the line opens
    caller.press("1")  # the number is right
    caller.press("1")  # as soon as a peer is free
    caller.press("2")  # no message
    assert caller.said.startswith("Thank you. We will call you back tomorrow at 9 am")
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    page = client.get("/staff/me").get_data(as_text=True)
    tomorrow = closed_until_tomorrow_9.astimezone(svc.settings.zone)
    assert f"next try {tomorrow:%a} 09:00" in page  # not "09:00", which reads as this morning


def test_a_spanish_caller_hears_the_opening_in_spanish(client, svc, db, closed_until_tomorrow_9) -> None:  # type: ignore[no-untyped-def]
    caller = TestCaller(client, number="+15555550179")
    caller.call()
    caller.press("2")  # español
    assert ("Peer Line está cerrada en este momento, así que ningún par puede contestar en vivo. "
            "La línea abre otra vez mañana a las 9 de la mañana. Mientras la línea está cerrada") in caller.said


def test_key_zero_on_a_closed_line_goes_to_a_message(client, svc, db, closed_until_tomorrow_9) -> None:  # type: ignore[no-untyped-def]
    make_caller(db, svc.vault, "+15555550180", language="en")
    caller = TestCaller(client, number="+15555550180")
    caller.call()
    caller.follow()
    caller.press("0")
    assert caller.said == ("Peer Line is closed right now, so no peer can answer live. "
                           "The line opens again tomorrow at 9 am.")
    assert caller.twiml.findtext("Redirect").split("?")[0].endswith("/voice/voicemail")


def test_a_closed_line_offers_nobody_as_a_person_but_key_zero_still_works(  # type: ignore[no-untyped-def]
        client, svc, db, closed_until_tomorrow_9) -> None:
    make_peer(db, svc.vault, phone="+15555550302", status="available")  # signed in, but the line is closed
    make_caller(db, svc.vault, "+15555550189", language="en")
    caller = TestCaller(client, number="+15555550189")
    caller.call()
    caller.follow()
    keys = ("To hear this again, press star. If you are in danger or thinking of suicide, press 9 for the "
            "crisis line.")
    assert caller.said.endswith(f"To leave a message, press 3. To go back, press 5. {keys}")
    caller.press("7")  # a wrong key says the whole block again: still nobody offered as a person
    assert caller.said.endswith(f"To go back, press 5. {keys}") and "press 0" not in caller.said
    caller.press("0")  # never a dead key: the closed notice, then a message
    assert caller.said.startswith("Peer Line is closed right now")
    assert caller.twiml.findtext("Redirect").split("?")[0].endswith("/voice/voicemail")
    # A Spanish caller is not offered a person either; an open line still offers one.
    make_caller(db, svc.vault, "+15555550190", language="es")
    spanish = TestCaller(client, number="+15555550190")
    spanish.call()
    spanish.follow()
    assert spanish.said.endswith("Para oír esto otra vez, oprima asterisco. Si está en peligro o piensa en el "
                                 "suicidio, oprima 9 para la línea de crisis.")
    assert "oprima 0" not in spanish.said
    assert hours.reopen(db, None, utcnow())
    caller = TestCaller(client, number="+15555550189")
    caller.call()
    caller.follow()
    assert "For a person, press 0." in caller.said


def test_a_caller_on_a_holiday_hears_the_line_opens_tonight_at_midnight(client, svc, db) -> None:  # type: ignore[no-untyped-def]
    hours.add_holiday(db, utcnow().astimezone(svc.settings.zone).date(), "Thanksgiving", None)
    make_caller(db, svc.vault, "+15555550187", language="en")
    caller = TestCaller(client, number="+15555550187")
    caller.call()
    assert caller.said.endswith("Peer Line is closed right now, so no peer can answer live. "
                                "The line opens again tonight at midnight.")


def test_reopened_line_answers_as_before(client, svc, db, closed_until_tomorrow_9) -> None:  # type: ignore[no-untyped-def]
    assert hours.reopen(db, None, utcnow())
    make_caller(db, svc.vault, "+15555550181", language="en")
    caller = TestCaller(client, number="+15555550181")
    caller.call()
    assert "closed" not in caller.said
    assert db.scalars(select(Closure)).one().ended_at is not None


def test_the_hold_queue_says_when_nobody_is_on_shift(client, svc, db) -> None:  # type: ignore[no-untyped-def]
    peer = make_peer(db, svc.vault, phone="+15555550302", status="break")
    make_caller(db, svc.vault, "+15555550182", language="en")
    caller = TestCaller(client, number="+15555550182")
    caller.call()
    caller.to_menu()
    caller.press("1")  # a peer on a break is on shift: the caller waits
    enqueue = caller.twiml.find("Enqueue")
    assert enqueue is not None
    peer.status = "signed_off"
    db.commit()
    caller.post(enqueue.get("waitUrl"), QueuePosition="1")
    assert caller.said.startswith("You are number 1 in line. No peers are on shift right now, so nobody may "
                                  "answer soon. You can get a call back or leave a message. While you wait, "
                                  "you can choose. To keep waiting, press 1. To get a call back and keep your "
                                  "place, press 2.")
    assert caller.twiml.find("Gather/Play") is None  # no story first: the choices at once


def test_seed_demo_adds_open_hours_and_a_week_of_covered_shifts(runner, db, svc) -> None:  # type: ignore[no-untyped-def]
    from callflows import shifts

    result = runner.invoke(args=["seed-demo", "--no-audio"])
    assert result.exit_code == 0, result.output
    assert "demo hours (open around the clock) and " in result.output
    now = utcnow()
    assert hours.is_open(db, svc.settings, now)
    week = shifts.upcoming(db, now, days=7)
    assert len(week) >= 4 * 7  # three shifts a day and the on-call backup
    assert shifts.gaps(db, now, days=7) == []
    result = runner.invoke(args=["hours", "show"])
    assert "hours: Monday 00:00-24:00; Tuesday 00:00-24:00" in result.output


def test_callbacks_asked_while_closed_keep_a_safe_window_and_a_closed_line_calls_nobody(svc, db) -> None:  # type: ignore[no-untyped-def]
    from callflows import callbacks

    settings = svc.settings.replace(line_timezone="America/New_York")
    hours.set_hours(db, [Period(d, 9 * 60, 17 * 60) for d in range(5)], None)  # weekdays 9 to 5
    saturday = at(2026, 11, 28, 10)
    # "As soon as a peer is free": Monday at 9, for the same four hours.
    start, end = callbacks.window_bounds("now", saturday, settings)
    assert hours.defer_to_opening(db, settings, start, end) == (at(2026, 11, 30, 9), at(2026, 11, 30, 13))
    # A morning window (9-12) the caller chose as safe: Monday's morning, never stretched past noon.
    start, end = callbacks.window_bounds("morning", saturday, settings)
    assert hours.defer_to_opening(db, settings, start, end, (9, 12)) == (at(2026, 11, 30, 9), at(2026, 11, 30, 12))
    # An evening window (17-21) the line is never open in stays as asked (the call is not moved to a morning).
    start, end = callbacks.window_bounds("evening", at(2026, 11, 30, 18), settings)
    assert hours.defer_to_opening(db, settings, start, end, (17, 21)) == (start, end)


def test_a_closed_line_offers_no_due_callback_to_a_free_peer(svc, db) -> None:  # type: ignore[no-untyped-def]
    from callflows import callbacks

    make_peer(db, svc.vault, phone="+15555550303", status="available")
    now = utcnow()
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text("+15555550183"), language="en", window="now",
                         status="pending", arrived_at=now - timedelta(minutes=5), not_before=now - timedelta(minutes=1),
                         not_after=now + timedelta(hours=1), due_at=now - timedelta(minutes=1))
    db.add(cb)
    db.commit()
    hours.close_now(db, "Staff meeting", None, now - timedelta(seconds=1))
    assert callbacks.offer_due(db, svc, now) == 0
    db.refresh(cb)
    assert cb.status == "pending"


@pytest.fixture
def network(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built (list it before ``svc``)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def test_a_closure_by_hand_stops_the_very_next_peer_coming_free_and_a_reopening_the_one_after(  # type: ignore[no-untyped-def]
        network, svc, db) -> None:
    from callflows import line

    now = utcnow()
    began = now - timedelta(seconds=svc.settings.peer_wrapup_seconds)
    peer = make_peer(db, svc.vault, phone="+15555550304", status="wrap_up", status_changed_at=began)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text("+15555550184"), language="en", window="now",
                         status="pending", arrived_at=now - timedelta(minutes=5), not_before=now - timedelta(minutes=1),
                         not_after=now + timedelta(hours=1), due_at=now - timedelta(minutes=1))
    db.add(cb)
    db.commit()
    hours.close_now(db, "Staff meeting", None, now - timedelta(seconds=1))
    # The peer's wrap-up ends while the line is closed: released, nobody called back.
    with svc.sessions() as session:
        assert line.wrap_up_passed(session, svc, peer.id, began.timestamp(), utcnow()) == "available"
    db.refresh(cb)
    assert cb.status == "pending"
    hours.reopen(db, None, utcnow())
    # Reopened: the next dispatch reads the hours again and calls back at once.
    assert line.dispatch(db, svc, utcnow()) == 1
    db.refresh(cb)
    assert cb.status == "dialing" and cb.peer_id == peer.id
    assert [r.form["To"] for r in network.state.requests if r.path.endswith("/Calls.json")] == [["+15555550304"]]


def test_every_phrase_of_hours_plans_and_shifts_is_in_both_languages() -> None:
    from callflows import load_flows

    flows = load_flows()
    ours = {"closed_now", "closed_opens", "closed_unknown", "when_at", "when_later", "when_midnight",
            "midnight_tonight", "hold_nobody_on", "global_keys_closed", "voicemail_saved_closed",
            "limit_reached", "blocked", "whisper_plan", "peer_next_shift", "peer_shift_ends", "record_outcome",
            "record_referral", "record_saved", "record_skipped", *(f"weekday_{d}" for d in range(7))}
    for flow in flows.values():
        assert ours <= set(flow.strings), flow.language
        assert {"closed", "limit_reached", "blocked"} <= set(flow.nodes), flow.language
    assert set(flows["en"].strings) == set(flows["es"].strings)


def test_a_safe_window_is_kept_to_the_hours_the_line_is_open_in_it(svc, db) -> None:  # type: ignore[no-untyped-def]
    from callflows import callbacks

    settings = svc.settings.replace(line_timezone="America/New_York",
                                    callback_windows="morning=9-12,afternoon=12-17,evening=17-21,late=15-19")
    hours.set_hours(db, [Period(d, 9 * 60, 17 * 60) for d in range(5)], None)  # weekdays 9 to 5
    monday = at(2026, 11, 30, 8)
    # The line is never open in the evening: no such window is offered; a window that runs past
    # closing time is promised only up to it.
    assert hours.windows_open(db, settings, monday) == ["morning", "afternoon", "late"]
    start, end = callbacks.window_bounds("late", monday, settings)
    assert hours.defer_to_opening(db, settings, start, end, (15, 19)) == (at(2026, 11, 30, 15), at(2026, 11, 30, 17))
    # Asked on Friday after closing: Monday's part of it.
    start, end = callbacks.window_bounds("late", at(2026, 12, 4, 17, 30), settings)
    assert hours.defer_to_opening(db, settings, start, end, (15, 19)) == (at(2026, 12, 7, 15), at(2026, 12, 7, 17))
    # A holiday on Monday: Tuesday's.
    hours.add_holiday(db, date(2026, 11, 30), "Closed", None)
    start, end = callbacks.window_bounds("late", monday, settings)
    assert hours.defer_to_opening(db, settings, start, end, (15, 19)) == (at(2026, 12, 1, 15), at(2026, 12, 1, 17))
    # Closed by hand until further notice: no window can be promised.
    hours.close_now(db, "Flood", None, monday - timedelta(hours=1))
    assert hours.windows_open(db, settings, monday) == []


def ask_for_callback(client, svc, db, number: str) -> TestCaller:  # type: ignore[no-untyped-def]
    """A caller who knows the menus asks for a call back and confirms the number: the window menu."""
    # noon_line must be set up before the app (first among the test's fixtures), or the line
    # keeps its own zone and the test depends on the hour it runs at.
    assert utcnow().astimezone(svc.settings.zone).hour in (12, 13)
    make_caller(db, svc.vault, number, language="en")
    caller = TestCaller(client, number=number)
    caller.call()
    caller.to_menu()
    caller.press("3")  # a call back
    caller.press("1")  # the number is right
    return caller


def test_a_caller_is_not_offered_a_callback_window_in_which_the_line_is_never_open(  # type: ignore[no-untyped-def]
        noon_line, client, svc, db) -> None:
    hours.set_hours(db, [Period(d, 9 * 60, 17 * 60) for d in range(7)], None)  # every day 9 to 5
    caller = ask_for_callback(client, svc, db, "+15555550184")
    assert caller.said.startswith("We can only call you back while the line is open. When is a safe time for us to "
                                  "call you? As soon as a peer is free, press 1. In the morning, press 2. In the "
                                  "afternoon, press 3. To go back, press 5.")
    assert "evening" not in caller.said
    caller.press("4")  # the evening's key does nothing here
    assert caller.said.startswith("Sorry, 4 is not a choice here. You can press 1, 2, 3 or 5.")
    caller.say("in the evening please")
    assert caller.said.startswith("Sorry, I did not understand.")
    caller.press("3")  # the afternoon, open now
    caller.press("2")  # no message
    assert caller.said.startswith("Thank you. We will call you back today between 12 pm and 5 pm,")
    cb = db.scalars(select(CallbackRequest)).one()
    assert (cb.window, cb.status) == ("afternoon", "pending")


def test_a_callback_window_past_closing_time_is_promised_only_until_closing(  # type: ignore[no-untyped-def]
        noon_line, client, svc, db) -> None:
    hours.set_hours(db, [Period(d, 9 * 60, 19 * 60) for d in range(7)], None)  # every day 9 to 7
    caller = ask_for_callback(client, svc, db, "+15555550185")
    assert "In the evening, press 4." in caller.said and "only call you back" not in caller.said
    caller.press("4")
    caller.press("2")
    assert caller.said.startswith("Thank you. We will call you back today between 5 pm and 7 pm,")
    cb = db.scalars(select(CallbackRequest)).one()
    local_end = cb.not_after.replace(tzinfo=UTC).astimezone(svc.settings.zone)
    assert (local_end.hour, local_end.minute) == (19, 0)
