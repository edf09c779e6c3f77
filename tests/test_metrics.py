"""Service metrics from a constructed history of one day with a known answer for every figure."""
from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from callflows import metrics, records
from models.escalation import Handoff
from models.tables import CallbackAttempt
from tests.factories import (
    make_call,
    make_callback,
    make_caller,
    make_event,
    make_peer,
    make_request,
    make_status_history,
    make_survey_answer,
    make_voicemail,
)

ZONE = ZoneInfo("America/New_York")
# Monday 2 November 2026, 09:00 in New York (EST, UTC-5: daylight saving time ended on 1 November).
T0 = datetime(2026, 11, 2, 14, 0, tzinfo=timezone.utc)
NOW = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@pytest.fixture
def history(db, svc) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """One local day of calls, callbacks, voicemails, peer time and survey answers."""
    vault = svc.vault
    p1 = make_peer(db, vault, phone="+15555550131", display_name="Sam", created_at=T0 - timedelta(days=30))
    p2 = make_peer(db, vault, phone="+15555550132", display_name="Rosa", created_at=T0)
    # Never called, no change kept: Jordan available since 22:00 (2 h of the day); Kim signed off all day.
    make_peer(db, vault, phone="+15555550133", display_name="Jordan", created_at=T0 - timedelta(days=9),
              status="available", status_changed_at=T0 + timedelta(hours=13))
    make_peer(db, vault, phone="+15555550134", display_name="Kim", status="signed_off",
              status_changed_at=T0 - timedelta(days=3))

    def call(number: str, start: datetime, language: str = "en", ended: bool = True, **fields: object):  # type: ignore[no-untyped-def]
        caller = make_caller(db, vault, number)
        return make_call(db, caller=caller, started_at=start, language=language,
                         ended_at=start + s(600) if ended else None, status="completed" if ended else "in-progress",
                         **fields)

    # Answered after 20 s, 50 s and 10 s; talks of 300, 100 and 200 s.
    a = call("+15555550111", T0, outcome="hung_up")
    ra = make_request(db, a, arrived_at=T0, status="ended", peer=p1, connected_at=T0 + s(20), ended_at=T0 + s(320),
                 legs=["completed"])
    b = call("+15555550112", T0 + timedelta(hours=1), language="es", outcome="hung_up")
    make_request(db, b, arrived_at=b.started_at, status="ended", peer=p2, connected_at=b.started_at + s(50),
                 ended_at=b.started_at + s(150), language="es", legs=["completed"])
    i = call("+15555550119", T0 + timedelta(hours=4), outcome="hung_up")
    ri = make_request(db, i, arrived_at=i.started_at, status="ended", peer=p1, connected_at=i.started_at + s(10),
                 ended_at=i.started_at + s(210), legs=["completed"])
    # Hung up after 40 s while a peer's phone rang for them; after 90 s on hold with nobody ringing.
    c = call("+15555550113", T0 + timedelta(hours=1), outcome="hung_up")
    make_request(db, c, arrived_at=c.started_at, status="abandoned", peer=p1, ended_at=c.started_at + s(40),
                 legs=["caller_gone"])
    d = call("+15555550114", T0 + timedelta(hours=2), outcome="hung_up")
    make_request(db, d, arrived_at=d.started_at, status="abandoned", peer=p2, ended_at=d.started_at + s(90),
                 legs=["no_answer"])
    # Hung up in the menus; heard a story; pressed 9 twice; left a message.
    e = call("+15555550115", T0 + timedelta(hours=2), outcome="hung_up")
    make_event(db, e, "incoming", at=e.started_at)
    make_event(db, e, "language", "1", at=e.started_at + s(5))
    f = call("+15555550116", T0 + timedelta(hours=3), outcome="hung_up")
    make_event(db, f, "story", at=f.started_at + s(30))
    g = call("+15555550117", T0 + timedelta(hours=3), outcome="hung_up")
    make_event(db, g, "crisis", "9", at=g.started_at + s(10))
    make_event(db, g, "crisis", "9", at=g.started_at + s(400))
    h = call("+15555550118", T0 + timedelta(hours=3), outcome="voicemail")
    # Still in the menus at the end of the period: neither answered nor abandoned.
    call("+15555550120", T0 + timedelta(hours=14), ended=False)
    # Not offered: a peer calling the line from their own phone, and a call the day before.
    call("+15555550131", T0 + timedelta(hours=4))
    yesterday = call("+15555550121", T0 - timedelta(days=1))

    # Callbacks: one that reached the caller after 30 minutes (they joined the peer's room then, on the
    # second attempt, and talked 10 minutes), one missed, one pending; a draft and a cancelled one do not count.
    done = make_callback(db, vault, created_at=T0, status="completed", updated_at=T0 + s(2400))
    db.add_all([CallbackAttempt(callback_id=done.id, number=1, stage="ended", outcome="no_answer", started_at=T0 + s(5),
                                ended_at=T0 + s(40)),
                CallbackAttempt(callback_id=done.id, number=2, stage="ended", outcome="connected",
                                peer_call_sid="CA-done-peer", caller_call_sid="CA-done-caller", answered_by="human",
                                started_at=T0 + s(1780), caller_joined_at=T0 + s(1800), ended_at=T0 + s(2400))])
    make_callback(db, vault, created_at=T0 + s(60), status="missed")
    make_callback(db, vault, created_at=T0 + s(120), status="pending")
    make_callback(db, vault, created_at=T0 + s(180), status="draft")
    make_callback(db, vault, created_at=T0 + s(240), status="canceled")
    make_callback(db, vault, created_at=T0 - timedelta(days=1), status="completed", updated_at=T0)

    # Voicemails: high reviewed after 10 min, low after an hour, medium not yet, one not triaged.
    make_voicemail(db, created_at=T0 + timedelta(hours=3), risk_level="high", reviewed_at=T0 + timedelta(hours=3) + s(600),
                   call_id=h.id)
    make_voicemail(db, created_at=T0 + timedelta(hours=5), risk_level="medium")
    make_voicemail(db, created_at=T0 + timedelta(hours=6), risk_level="low", reviewed_at=T0 + timedelta(hours=7))
    make_voicemail(db, created_at=T0 + timedelta(hours=6), risk_level=None)

    # Sam: on shift 08:00-11:00 (3 h), busy 320 s and wrapping up 120 s. Rosa: added at 09:00 and
    # never signed off, her first change a call at 10:00 (so available since 09:00): busy 150 s, wrap-up 60 s.
    make_status_history(db, p1, [(T0 - timedelta(hours=1), "available"), (T0, "busy"), (T0 + s(320), "wrap_up"),
                                 (T0 + s(440), "available"), (T0 + timedelta(hours=2), "signed_off")])
    r0 = T0 + timedelta(hours=1)
    make_status_history(db, p2, [(r0, "busy"), (r0 + s(150), "wrap_up"), (r0 + s(210), "available")])

    # In-call help: the crisis line added and answered in call a, a supervisor asked for and not
    # answered in call i; a hand-off the day before does not count.
    db.add_all([Handoff(request_id=ra.id, peer_id=p1.id, kind="crisis", status="ended", created_at=T0 + s(100),
                        answered_at=T0 + s(115)),
                Handoff(request_id=ri.id, peer_id=p1.id, kind="supervisor", status="no_answer",
                        created_at=i.started_at + s(60)),
                Handoff(request_id=ra.id, peer_id=p1.id, kind="crisis", status="ended",
                        created_at=T0 - timedelta(days=1), answered_at=T0 - timedelta(days=1) + s(5))])
    db.commit()
    make_survey_answer(db, at=T0 + s(400), question="helped", answer=4)
    make_survey_answer(db, at=T0 + timedelta(hours=1, seconds=200), question="helped", answer=5)
    make_survey_answer(db, at=T0 + timedelta(hours=1, seconds=210), question="again", answer=1)
    make_survey_answer(db, at=T0 - timedelta(days=1), question="helped", answer=1)
    return SimpleNamespace(p1=p1, p2=p2, a=a, b=b, i=i, yesterday=yesterday)


def add_records(db, history) -> None:  # type: ignore[no-untyped-def]
    """Post-call records: two of the day's three answered calls fully, one with no outcome, one the day before."""
    records.save(db, history.a.id, history.p1.id, "keypad", outcome="talked_through", reason="loneliness",
                 referral=False, risk="none")
    records.save(db, history.b.id, history.p2.id, "page", outcome="referred", reason="substance_use", referral=True,
                 risk="low")
    records.save(db, history.i.id, history.p1.id, "page", reason="loneliness")
    records.save(db, history.yesterday.id, history.p1.id, "page", outcome="crisis_handoff", reason="mental_health")


def compute(db) -> metrics.Metrics:  # type: ignore[no-untyped-def]
    period = metrics.period_for_days(date(2026, 11, 2), date(2026, 11, 2), ZONE, NOW)
    return metrics.compute(db, period, ZONE, 30, now=NOW)


def test_every_metric_of_a_known_day(db, history) -> None:  # type: ignore[no-untyped-def]
    m = compute(db)
    assert (m.since, m.until) == ("2026-11-02T05:00:00+00:00", "2026-11-03T05:00:00+00:00")
    assert m.calls_offered == 10
    assert m.answered_by_peer == 3
    assert (m.abandoned_in_menus, m.abandoned_while_ringing, m.abandoned_on_hold) == (1, 1, 1)
    assert m.abandoned == 3
    assert m.peer_requests == 5
    assert m.speed_of_answer_avg == pytest.approx(80 / 3)
    assert m.speed_of_answer_p90 == 50
    # Answered within 30 s (10 s and 20 s) out of 3 answered + 2 abandoned while waiting.
    assert m.service_level == pytest.approx(2 / 5)
    assert m.longest_wait == 90
    assert m.handle_time_avg == pytest.approx(200)
    assert m.after_call_work_avg == pytest.approx(90)
    # Sam 440 s of work in 3 h on shift; Rosa 210 s in the 15 h from 09:00 to the end of the day;
    # Jordan none in 2 h; Kim was never on shift.
    assert m.occupancy == pytest.approx((440 + 210) / (3 * 3600 + 15 * 3600 + 2 * 3600))
    assert (m.callbacks_requested, m.callbacks_completed, m.callbacks_missed) == (3, 1, 1)
    assert m.time_to_callback_avg == 1800
    assert m.voicemails == {"high": 1, "medium": 1, "low": 1, "mentioned": 0, "none": 0, "unknown": 0, "untriaged": 1}
    assert m.time_to_review_avg == {"high": 600, "medium": None, "low": 3600, "mentioned": None, "none": None,
                                    "unknown": None, "untriaged": None}
    assert (m.crisis_key_presses, m.crisis_key_calls) == (2, 1)
    assert (m.handoffs, m.handoffs_answered) == (2, 1)
    assert m.survey["helped"] == {"count": 2, "average": 4.5,
                                  "distribution": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 1}}
    assert m.survey["again"]["count"] == 1


def test_minutes_by_call_type_as_a_provider_bills_them(db, svc, history) -> None:  # type: ignore[no-untyped-def]
    """The figures the cost note of docs/operations.md multiplies by the provider's rates."""
    cb = make_callback(db, svc.vault, created_at=T0, status="completed")
    db.add_all([
        # Connected: the peer's leg 670 s from dialling, the caller's 610 s in the room.
        CallbackAttempt(callback_id=cb.id, stage="ended", outcome="connected", peer_call_sid="CA-peer-1",
                        caller_call_sid="CA-caller-1", answered_by="human", started_at=T0,
                        caller_joined_at=T0 + s(60), ended_at=T0 + s(670)),
        # The caller's voicemail answered: the peer's leg 45 s, the caller's its first minute.
        CallbackAttempt(callback_id=cb.id, stage="ended", outcome="machine", peer_call_sid="CA-peer-2",
                        caller_call_sid="CA-caller-2", answered_by="machine_start", started_at=T0 + s(3600),
                        ended_at=T0 + s(3645)),
        # The peer did not answer, so the caller was never dialled: nothing billed.
        CallbackAttempt(callback_id=cb.id, stage="ended", outcome="peer_no_answer", peer_call_sid="CA-peer-3",
                        started_at=T0 + s(7200), ended_at=T0 + s(7230)),
        # The day before: not in the period.
        CallbackAttempt(callback_id=cb.id, stage="ended", outcome="connected", peer_call_sid="CA-peer-4",
                        caller_call_sid="CA-caller-4", started_at=T0 - timedelta(days=1),
                        caller_joined_at=T0 - timedelta(days=1), ended_at=T0 - timedelta(days=1) + s(600)),
    ])
    db.commit()
    m = compute(db)
    # Every ended call lasted 600 s: three talked with a peer, one pressed 9, one left a message, and
    # the rest (gave up ringing, on hold, in the menus, heard a story) are the other four.
    assert m.minutes_inbound == {"peer": {"calls": 3, "minutes": 30}, "crisis": {"calls": 1, "minutes": 10},
                                 "callback": {"calls": 0, "minutes": 0}, "message": {"calls": 1, "minutes": 10},
                                 "other": {"calls": 4, "minutes": 40}}
    # Waits of 20, 50 and 10 s before an answer and 40 and 90 s before hanging up: 210 s.
    assert m.minutes_waiting == 4
    # Talks of 300, 100 and 200 s, each leg rounded up: 5 + 2 + 4.
    assert m.minutes_peer_legs == 11
    # With the history's own callback (its peer's leg 620 s, its caller in the room 600 s, and a first
    # attempt the peer never answered, so nobody was dialled for it).
    assert (m.minutes_callback_peer_legs, m.minutes_callback_caller_legs) == (12 + 1 + 11, 11 + 1 + 10)
    text = "\n".join(metrics.summary_lines(m))
    assert ("inbound minutes (billed per started minute): talked with a peer 30 on 3 calls, pressed 9 10 on "
            "1 calls, asked for a callback 0 on 0 calls, left a message 10 on 1 calls, stories, menus or hung up "
            "40 on 4 calls; of them waiting for a peer: 4") in text
    assert "outbound minutes: peers' legs 11; callbacks: peers' legs 24, callers' legs 22" in text


def test_breakdowns_by_local_hour_day_and_language(db, history) -> None:  # type: ignore[no-untyped-def]
    m = compute(db)
    hours = {h: (b.offered, b.answered, b.abandoned) for h, b in m.by_hour.items()}
    assert hours == {9: (1, 1, 0), 10: (2, 1, 1), 11: (2, 0, 2), 12: (3, 0, 0), 13: (1, 1, 0), 23: (1, 0, 0)}
    assert {d: (b.offered, b.answered, b.abandoned) for d, b in m.by_day.items()} == {"2026-11-02": (10, 3, 3)}
    assert {k: (b.offered, b.answered, b.abandoned) for k, b in m.by_language.items()} == {
        "en": (9, 2, 3), "es": (1, 1, 0)}
    monday = m.hour_of_week[0]
    assert [monday[h] for h in (9, 10, 11, 12, 13, 23)] == [1, 2, 2, 3, 1, 1]
    assert sum(map(sum, m.hour_of_week)) == 10
    assert m.requests_by_hour_of_week[0][10] == 2 and m.talks_by_hour_of_week[0][10] == 1
    assert m.talk_by_hour_of_week[0][10] == 100
    assert m.wait_distribution["10-30 s"] == {"answered": 2, "not_answered": 0}
    assert m.wait_distribution["30-60 s"] == {"answered": 1, "not_answered": 1}
    assert m.wait_distribution["1-2 min"] == {"answered": 0, "not_answered": 1}


def test_an_empty_period_has_no_averages(db) -> None:  # type: ignore[no-untyped-def]
    m = compute(db)
    assert (m.calls_offered, m.answered_by_peer, m.abandoned) == (0, 0, 0)
    assert m.speed_of_answer_avg is None and m.service_level is None and m.occupancy is None
    assert m.longest_wait is None and m.time_to_callback_avg is None


def test_percentile_is_nearest_rank() -> None:
    assert metrics.percentile(list(range(1, 11)), 90) == 9
    assert metrics.percentile([5.0], 90) == 5.0
    assert metrics.percentile([], 90) is None


def test_metrics_command_prints_the_day_and_json(runner, history, app) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["metrics", "--since", "2026-11-02", "--until", "2026-11-02"])
    assert result.exit_code == 0, result.output
    assert "calls offered: 10" in result.output
    assert "abandoned: in menus 1, while ringing 1, on hold 1" in result.output
    assert "service level (answered within 30 s): 40 %" in result.output
    assert "by hour: 09:00 1 offered / 1 answered / 0 abandoned, 10:00 2 offered / 1 answered / 1 abandoned, " \
           "11:00 2 offered / 0 answered / 2 abandoned, 12:00 3 offered / 0 answered / 0 abandoned" in result.output
    assert "by day: 2026-11-02 10 offered / 3 answered / 3 abandoned" in result.output
    assert "by language: en 9 offered / 2 answered / 3 abandoned, es 1 offered / 1 answered / 0 abandoned" \
        in result.output
    as_json = runner.invoke(args=["metrics", "--since", "2026-11-02", "--until", "2026-11-02", "--json"])
    data = json.loads(as_json.output)
    assert (data["calls_offered"], data["answered_by_peer"], data["abandoned"]) == (10, 3, 3)
    assert data["speed_of_answer_p90"] == 50
    assert data["by_hour"]["23"] == {"offered": 1, "answered": 0, "abandoned": 0}
    assert data["by_day"] == {"2026-11-02": {"offered": 10, "answered": 3, "abandoned": 3}}
    assert data["by_language"]["es"] == {"offered": 1, "answered": 1, "abandoned": 0}


def test_post_call_records_by_outcome_and_reason(db, history) -> None:  # type: ignore[no-untyped-def]
    add_records(db, history)
    m = compute(db)
    # The day's three records; the day before's is another period.
    assert m.call_records == 3
    assert m.records_by_outcome == {"talked_through": 1, "referred": 1, "crisis_handoff": 0, "ended_early": 0,
                                    "other": 0, "not_given": 1}
    assert m.records_by_reason == {"loneliness": 2, "substance_use": 1, "medication_treatment": 0, "mental_health": 0,
                                   "relationships": 0, "basic_needs": 0, "other": 0, "not_given": 0}
    cells = {(section, item): v for section, item, v in metrics.export_cells(m)}
    assert cells[("records", "call_records")] == "<11"
    assert cells[("record_outcome", "talked_through")] == "<11" and cells[("record_outcome", "crisis_handoff")] == "0"
    assert cells[("record_reason", "loneliness")] == "<11"
    assert "post-call records: 3; by outcome: talked_through 1, referred 1, not_given 1; " \
           "by reason: loneliness 2, substance_use 1" in metrics.summary_lines(m)


def test_record_counts_of_eleven_or_more_are_exported_and_a_lone_small_one_takes_another_with_it() -> None:
    m = metrics.Metrics(since="", until="", timezone="UTC", service_level_seconds=30, call_records=40,
                        records_by_outcome={"talked_through": 25, "referred": 12, "not_given": 3})
    cells = [(item, v) for section, item, v in metrics.export_cells(m) if section == "record_outcome"]
    assert cells == [("talked_through", "25"), ("referred", "<11"), ("not_given", "<11")]


def test_a_caller_who_pressed_9_on_hold_counts_as_gone_to_the_crisis_line_not_lost(db, svc) -> None:  # type: ignore[no-untyped-def]
    vault = svc.vault
    peer = make_peer(db, vault, phone="+15555550141", display_name="Sam")
    # Pressed 9 after 60 s on hold: the request says "crisis" (as the hold now records it), or, on rows
    # written before that, "abandoned" with the crisis key pressed after arriving: neither is lost.
    for number, status in (("+15555550142", "crisis"), ("+15555550143", "abandoned")):
        held = make_call(db, caller=make_caller(db, vault, number), started_at=T0, ended_at=T0 + s(600),
                         status="completed", outcome="hung_up")
        make_request(db, held, arrived_at=T0 + s(20), status=status, ended_at=T0 + s(80))
        make_event(db, held, "crisis", "9", at=T0 + s(80))
    # Pressed 9 at the menu, came back, asked for a peer and hung up on hold: that one is lost on hold.
    back = make_call(db, caller=make_caller(db, vault, "+15555550144"), started_at=T0, ended_at=T0 + s(600),
                     status="completed", outcome="hung_up")
    make_event(db, back, "crisis", "9", at=T0 + s(5))
    make_request(db, back, arrived_at=T0 + s(300), status="abandoned", peer=peer, ended_at=T0 + s(400),
                 legs=["no_answer"])
    m = compute(db)
    assert m.calls_offered == 3
    assert (m.abandoned_in_menus, m.abandoned_while_ringing, m.abandoned_on_hold) == (0, 0, 1)
    assert m.crisis_key_calls == 3


def test_service_level_counts_within_the_configured_seconds(db, history) -> None:  # type: ignore[no-untyped-def]
    period = metrics.period_for_days(date(2026, 11, 2), date(2026, 11, 2), ZONE, NOW)
    # Answered after 10, 20 and 50 s; two gave up waiting. Within 60 s: three of five; within 15 s: one.
    assert metrics.compute(db, period, ZONE, 60, now=NOW).service_level == pytest.approx(3 / 5)
    assert metrics.compute(db, period, ZONE, 15, now=NOW).service_level == pytest.approx(1 / 5)


@pytest.fixture
def answer_within_60(app_config):  # type: ignore[no-untyped-def]
    """SERVICE_LEVEL_SECONDS=60 for the app the test builds."""
    app_config["service_level_seconds"] = 60


def test_service_level_seconds_setting_reaches_the_metrics_command(answer_within_60, runner, history) -> None:  # type: ignore[no-untyped-def]
    result = runner.invoke(args=["metrics", "--since", "2026-11-02", "--until", "2026-11-02"])
    assert "service level (answered within 60 s): 60 %" in result.output, result.output


def test_calls_fall_on_their_local_day_and_hour_across_midnight(db, svc) -> None:  # type: ignore[no-untyped-def]
    vault = svc.vault
    peer = make_peer(db, vault, phone="+15555550151", display_name="Sam")
    # 23:30 on Monday 2 November in New York is 04:30 UTC on Tuesday; 00:30 on Tuesday is 05:30 UTC.
    late = make_call(db, caller=make_caller(db, vault, "+15555550152"), started_at=T0 + timedelta(hours=14, minutes=30),
                     ended_at=T0 + timedelta(hours=15), status="completed", outcome="hung_up", language="es")
    make_request(db, late, arrived_at=late.started_at, status="ended", peer=peer, connected_at=late.started_at + s(5),
                 ended_at=late.started_at + s(65), language="es", legs=["completed"])
    early = make_call(db, caller=make_caller(db, vault, "+15555550153"), started_at=T0 + timedelta(hours=15, minutes=30),
                      ended_at=T0 + timedelta(hours=16), status="completed", outcome="hung_up", language="en")
    make_request(db, early, arrived_at=early.started_at, status="abandoned", peer=peer, ended_at=early.started_at + s(30),
                 legs=["no_answer"])
    period = metrics.period_for_days(date(2026, 11, 2), date(2026, 11, 3), ZONE, NOW)
    m = metrics.compute(db, period, ZONE, 30, now=NOW)
    assert {d: (b.offered, b.answered, b.abandoned) for d, b in m.by_day.items()} == {
        "2026-11-02": (1, 1, 0), "2026-11-03": (1, 0, 1)}
    assert {h: (b.offered, b.answered, b.abandoned) for h, b in m.by_hour.items()} == {23: (1, 1, 0), 0: (1, 0, 1)}
    assert {k: (b.offered, b.answered, b.abandoned) for k, b in m.by_language.items()} == {
        "es": (1, 1, 0), "en": (1, 0, 1)}
    assert (m.hour_of_week[0][23], m.hour_of_week[1][0]) == (1, 1)
    # Monday alone holds only the late call.
    monday = metrics.compute(db, metrics.period_for_days(date(2026, 11, 2), date(2026, 11, 2), ZONE, NOW), ZONE, 30,
                             now=NOW)
    assert (monday.calls_offered, list(monday.by_day)) == (1, ["2026-11-02"])


def test_every_triage_level_is_counted_apart_from_untriaged(db) -> None:  # type: ignore[no-untyped-def]
    # Only negated risk words, and a message the demo speech model could not judge: both were triaged.
    make_voicemail(db, created_at=T0, risk_level="mentioned", reviewed_at=T0 + s(120))
    make_voicemail(db, created_at=T0, risk_level="unknown")
    make_voicemail(db, created_at=T0, risk_level=None)
    m = compute(db)
    assert m.voicemails == {"high": 0, "medium": 0, "low": 0, "mentioned": 1, "none": 0, "unknown": 1, "untriaged": 1}
    assert m.time_to_review_avg["mentioned"] == 120
    assert "voicemails: high 0, medium 0, low 0, mentioned 1, none 0, unknown 1, untriaged 1" in metrics.summary_lines(m)


def test_breakdowns_in_the_export_hide_a_second_cell_so_no_subtraction_reveals_a_small_one() -> None:
    m = metrics.Metrics(since="", until="", timezone="UTC", service_level_seconds=30, calls_offered=18,
                        answered_by_peer=14, by_language={"en": metrics.Breakdown(15, 12, 1),
                                                          "es": metrics.Breakdown(3, 2, 0)},
                        by_hour={9: metrics.Breakdown(18, 14, 1)}, by_day={"2026-11-02": metrics.Breakdown(18, 14, 1)})
    cells = {(section, item): v for section, item, v in metrics.export_cells(m)}
    assert cells[("calls", "offered")] == "18"
    # 18 - 15 would give Spanish's 3 away: English is hidden with it.
    assert (cells[("by_language", "en_offered")], cells[("by_language", "es_offered")]) == ("<11", "<11")
    assert (cells[("by_language", "en_answered")], cells[("by_language", "es_answered")]) == ("<11", "<11")
    assert (cells[("by_hour", "09_offered")], cells[("by_hour", "09_answered")]) == ("18", "14")
    assert cells[("by_day", "2026-11-02_offered")] == "18"
