"""Caller plans, limits and blocks; post-call records; shifts and the sign-in alert; the staff pages for them.

Real SQL and Redis; the phone network stands in for Twilio's REST API (SMS and calls).
"""
from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Any, Iterator
from zoneinfo import ZoneInfo

import pytest
from lxml import html
from sqlalchemy import select

from callflows import callers, records, shifts
from callflows.callers import Reached, count_calls
from callflows.services import Services
from ivr import create_app
from ivr.services import services
from models import (AuditEntry, CallbackRequest, CallerBlock, CallerPlan, CallRecord, Shift, ShiftSignup, StaffUser,
                    utcnow)
from models.tables import CallbackAttempt, PeerRequest, RingLeg
from queues.periodic import check_shifts
from tests.factories import make_call, make_caller, make_peer
from tests.helpers import TestCaller
from tests.test_dashboard import audit_actions, post, sign_in

UTC = timezone.utc
NUMBER = "+15555550160"


def reached_peer(db: Any, caller: Any, connected_ago: int, ended_ago: int | None, peer: Any) -> PeerRequest:
    """An earlier call of ``caller`` that reached ``peer`` (minutes ago), as routing records it."""
    now = utcnow()
    call = make_call(db, caller=caller, status="completed")
    req = PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", peer_id=peer.id,
                      status="ended" if ended_ago is not None else "connected",
                      arrived_at=now - timedelta(minutes=connected_ago + 1),
                      connected_at=now - timedelta(minutes=connected_ago),
                      ended_at=now - timedelta(minutes=ended_ago) if ended_ago is not None else None)
    db.add(req)
    db.commit()
    return req


# Limits --------------------------------------------------------------------------------------


def test_a_call_dropped_and_redialled_within_a_few_minutes_counts_once() -> None:
    t0 = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)
    calls = [Reached(t0, t0 + timedelta(minutes=20)),
             Reached(t0 + timedelta(minutes=23), t0 + timedelta(minutes=40)),  # redialled 3 minutes later
             Reached(t0 + timedelta(minutes=90), t0 + timedelta(minutes=100))]
    assert count_calls(calls, t0 + timedelta(hours=3)) == 2
    assert count_calls(calls[:1], t0 + timedelta(minutes=5)) == 1
    assert count_calls([], t0) == 0
    # Still on the line (no end yet): a second leg now is the same call.
    assert count_calls([Reached(t0, None), Reached(t0 + timedelta(minutes=1), None)], t0 + timedelta(minutes=2)) == 1


def test_a_caller_over_the_limit_hears_a_kind_message_and_keeps_every_safe_option(  # type: ignore[no-untyped-def]
        noon_line, client, svc, db) -> None:
    peer = make_peer(db, svc.vault, phone="+15555550311", status="available")
    caller_row = make_caller(db, svc.vault, NUMBER, language="en")
    callers.set_plan(db, svc.vault, caller_row.id, None, 1, None, utcnow())
    # Asked to call back, and never reached a peer on that call: that does not count.
    asked = make_call(db, caller=caller_row, status="completed")
    db.add(PeerRequest(call_sid=asked.call_sid, call_id=asked.id, language="en", status="callback",
                       arrived_at=utcnow() - timedelta(minutes=50)))
    db.commit()
    assert not callers.over_limit(db, svc.settings, caller_row.id, utcnow())
    reached_peer(db, caller_row, connected_ago=40, ended_ago=30, peer=peer)
    caller = TestCaller(client, number=NUMBER)
    caller.call()
    caller.to_menu()
    caller.press("1")
    assert caller.said.startswith(
        "You have talked with a peer as many times today as your plan with us says. We are glad you called, and "
        "you are welcome to call again tomorrow. You can still choose. To hear stories from peers, press 1. "
        "To get a call back, press 2. To leave a message, press 3. To go back, press 5.")
    caller.press("*")  # the keys in full: no person offered, as 0 would only say this again
    assert caller.said.endswith("To go back, press 5. To hear this again, press star. If you are in danger or "
                                "thinking of suicide, press 9 for the crisis line.")
    assert db.scalars(select(RingLeg)).all() == []  # nobody was rung
    caller.press("9")  # the crisis key is never limited
    assert caller.twiml.find("Dial").findtext("Number") == "988"


def test_a_call_late_last_evening_does_not_use_up_todays_limit(svc, db) -> None:  # type: ignore[no-untyped-def]
    settings = svc.settings.replace(line_timezone="America/New_York")
    peer = make_peer(db, svc.vault, phone="+15555550314", status="available")
    caller_row = make_caller(db, svc.vault, NUMBER, language="en")
    evening = datetime(2026, 11, 27, 3, tzinfo=UTC)  # Thursday 10 pm in New York, already Friday in UTC
    callers.set_plan(db, svc.vault, caller_row.id, None, 1, None, evening - timedelta(hours=1))
    call = make_call(db, caller=caller_row, status="completed")
    db.add(PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", peer_id=peer.id, status="ended",
                       arrived_at=evening, connected_at=evening, ended_at=evening + timedelta(minutes=20)))
    db.commit()
    assert callers.calls_today(db, settings, caller_row.id, evening + timedelta(hours=1)) == 1
    assert callers.over_limit(db, settings, caller_row.id, evening + timedelta(hours=1))  # 11 pm: that was today's
    morning = datetime(2026, 11, 27, 13, tzinfo=UTC)  # Friday 8 am in New York: a new day, a new call
    assert callers.calls_today(db, settings, caller_row.id, morning) == 0
    assert not callers.over_limit(db, settings, caller_row.id, morning)


def test_a_redial_within_a_few_minutes_goes_through_as_the_same_call(noon_line, client, svc, db) -> None:  # type: ignore[no-untyped-def]
    peer = make_peer(db, svc.vault, phone="+15555550312", status="available")
    caller_row = make_caller(db, svc.vault, NUMBER, language="en")
    callers.set_plan(db, svc.vault, caller_row.id, None, 1, None, utcnow())
    reached_peer(db, caller_row, connected_ago=20, ended_ago=2, peer=peer)  # dropped two minutes ago
    caller = TestCaller(client, number=NUMBER)
    caller.call()
    caller.to_menu()
    caller.press("1")
    assert caller.twiml.find("Enqueue") is not None
    assert caller.said == "Finding a peer for you. Please stay on the line."


# Blocks ---------------------------------------------------------------------------------------


def test_a_blocked_caller_hears_a_message_keeps_stories_and_the_crisis_line(client, svc, db) -> None:  # type: ignore[no-untyped-def]
    make_peer(db, svc.vault, phone="+15555550313", status="available")
    caller_row = make_caller(db, svc.vault, NUMBER, language="en")
    now = utcnow()
    ends = (now.astimezone(svc.settings.zone) + timedelta(days=2)).replace(hour=15, minute=0, second=0, microsecond=0)
    row = callers.block(db, svc.vault, caller_row.id, "threats to peers", ends.astimezone(UTC), None, now)
    assert b"threats" not in row.reason_encrypted
    caller = TestCaller(client, number=NUMBER)
    caller.call()
    caller.to_menu()
    caller.press("0")  # a person: not while blocked, and never silence
    assert caller.said.startswith("For now, calls from this number cannot be put through to a peer. "
                                  f"That ends on {ends:%A} at 3 pm.")
    assert "You can still hear stories from peers. If you are in danger, press 9 for the crisis line." in caller.said
    caller.press("*")  # the keys in full: no person offered, as 0 would only say this again
    assert caller.said.endswith("To hear stories from peers, press 1. To go back, press 5. To hear this again, "
                                "press star. If you are in danger or thinking of suicide, press 9 for the crisis line.")
    assert db.scalars(select(PeerRequest)).all() == []
    caller.press("5")  # back to the main menu: a call back would reach a peer too
    caller.press("3")
    assert caller.said.startswith("For now, calls from this number cannot be put through to a peer. That ends ")
    assert db.scalars(select(CallbackRequest)).all() == []
    caller.press("1")
    assert caller.said.startswith("Which stories would you like to hear?")
    caller.press("9")
    assert caller.twiml.find("Dial").findtext("Number") == "988"
    assert callers.lift_block(db, row.id, None, utcnow())
    assert [a.action for a in db.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
        "caller_blocked", "caller_unblocked"]


# Plans and who sees them -------------------------------------------------------------------------


def test_plan_visibility_by_role(client, svc, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    caller_row = dashboard_data.caller
    pseudonym = callers.pseudonym(svc.vault, caller_row.id)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    listing = client.get("/staff/callers").get_data(as_text=True)
    assert pseudonym in listing and "+1555" not in listing  # never the number
    assert client.get(f"/staff/callers?pseudonym={pseudonym}").headers["Location"] == f"/staff/callers/{caller_row.id}"
    response = post(client, f"/staff/callers/{caller_row.id}/plan", plan="Agreed 20-minute calls.", daily_limit="2")
    assert response.status_code == 302
    plan = db.scalars(select(CallerPlan)).one()
    assert plan.daily_limit == 2 and b"20-minute" not in plan.plan_encrypted
    assert svc.vault.decrypt_text(plan.plan_encrypted) == "Agreed 20-minute calls."
    assert "Agreed 20-minute calls." in client.get(f"/staff/callers/{caller_row.id}").get_data(as_text=True)
    assert [a.detail for a in audit_actions(db, "caller_plan")] == ["plan set; daily limit 2"]
    assert len(audit_actions(db, "view_caller_plan")) == 1
    client.post("/staff/sign-out", data={"csrf_token": _token(client)})

    # A peer never sees the caller list, and sees a plan only for the caller they accepted.
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert client.get("/staff/callers").status_code == 403
    assert client.get(f"/staff/callers/{caller_row.id}").status_code == 403
    assert "Agreed 20-minute calls." not in client.get("/staff/me").get_data(as_text=True)
    call = make_call(db, caller=caller_row)
    other = PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", peer_id=dashboard_data.rosa.id,
                        status="connected", connected_at=utcnow())
    db.add(other)
    db.commit()
    assert "Agreed 20-minute calls." not in client.get("/staff/me").get_data(as_text=True)
    other.peer_id = dashboard_data.sam.id
    db.commit()
    page = client.get("/staff/me").get_data(as_text=True)
    assert "Your caller has a plan" in page and "Agreed 20-minute calls." in page
    views = audit_actions(db, "view_caller_plan")
    assert len(views) == 2 and views[-1].detail == f"accepting peer {dashboard_data.sam.id}"


def _token(client: Any) -> str:
    from tests.test_dashboard import csrf_token

    return csrf_token(client, "/staff/")


def test_the_whisper_cues_the_plan_without_reading_it(client, svc, db) -> None:  # type: ignore[no-untyped-def]
    peer = make_peer(db, svc.vault, phone="+15555550314", status="busy")
    caller_row = make_caller(db, svc.vault, NUMBER, language="en")
    callers.set_plan(db, svc.vault, caller_row.id, "Prefers a peer with medication-based recovery.", None, None,
                     utcnow())
    call = make_call(db, caller=caller_row)
    req = PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", status="ringing", arrived_at=utcnow())
    db.add(req)
    db.flush()
    leg = RingLeg(request_id=req.id, peer_id=peer.id, call_sid="CAleg1", status="ringing")
    db.add(leg)
    db.commit()
    phone = TestCaller(client, number="+15005550006", call_sid="CAleg1")
    phone.post(f"/peer/leg/{leg.id}/whisper")
    assert phone.said.startswith("Peer support call in English. Press 1 to accept. This caller has a plan on your "
                                 "page.")
    assert "medication" not in phone.said  # a cue only: the plan is on the page


def test_the_callback_peer_hears_the_cue_and_sees_the_plan_while_connected(client, svc, db,  # type: ignore[no-untyped-def]
                                                                           dashboard_data) -> None:
    sam, caller_row = dashboard_data.sam, dashboard_data.caller
    callers.set_plan(db, svc.vault, caller_row.id, "Agreed 20-minute calls.", None, None, utcnow())
    cb = CallbackRequest(caller_id=caller_row.id, number_encrypted=svc.vault.encrypt_text(NUMBER), language="en",
                         status="dialing", arrived_at=utcnow())
    db.add(cb)
    db.flush()
    attempt = CallbackAttempt(callback_id=cb.id, peer_id=sam.id, stage="peer_ringing", peer_call_sid="CApeercb")
    db.add(attempt)
    db.commit()
    phone = TestCaller(client, number="+15005550006", call_sid="CApeercb")
    phone.post(f"/callbacks/attempt/{attempt.id}/peer")
    assert phone.said.startswith("Callback for a caller who called at ")
    assert "Press 1 to call them now. This caller has a plan on your page." in phone.said
    assert "20-minute" not in phone.said
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert "Agreed 20-minute calls." not in client.get("/staff/me").get_data(as_text=True)  # not connected yet
    attempt.stage = "connected"
    db.commit()
    page = client.get("/staff/me").get_data(as_text=True)
    assert "Your caller has a plan" in page and "Agreed 20-minute calls." in page


# Post-call records ----------------------------------------------------------------------------


def test_the_peer_keys_the_call_record_in_wrap_up_and_completes_it_on_the_page(  # type: ignore[no-untyped-def]
        client, svc, db, dashboard_data) -> None:
    sam = dashboard_data.sam
    call = make_call(db, caller=dashboard_data.caller)
    now = utcnow()
    req = PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", peer_id=sam.id, status="ended",
                      arrived_at=now - timedelta(minutes=13), connected_at=now - timedelta(minutes=12), ended_at=now)
    db.add(req)
    db.flush()
    leg = RingLeg(request_id=req.id, peer_id=sam.id, call_sid="CAleg2", status="accepted")
    db.add(leg)
    db.commit()
    phone = TestCaller(client, number="+15005550006", call_sid="CAleg2")
    phone.post(f"/peer/leg/{leg.id}/after")
    assert phone.said == ("The caller has hung up. Thank you. Before you go, key the outcome of the call. "
                          "1, talked it through. 2, referred. 3, crisis hand-off. 4, ended early. 5, other.")
    phone.press("2")
    assert phone.said == "Was a referral given? Press 1 for yes, 2 for no."
    phone.press("1")
    assert phone.said == "Thank you. Your call record is saved. Thank you. Goodbye."
    row = db.scalars(select(CallRecord)).one()
    assert (row.outcome, row.referral, row.minutes, row.source, row.reason) == ("referred", True, 12, "keypad", None)

    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    # The keypad gave the outcome and the referral only: the page asks for the rest.
    link = f'href="/staff/me/calls/{call.id}/record"'
    assert link in client.get("/staff/me").get_data(as_text=True)
    response = post(client, f"/staff/me/calls/{call.id}/record", reason="loneliness", outcome="referred",
                    referral="yes", risk="low", minutes="12")
    assert response.status_code == 302
    db.expire_all()
    row = db.scalars(select(CallRecord)).one()
    assert (row.reason, row.risk, row.outcome) == ("loneliness", "low", "referred")
    assert link not in client.get("/staff/me").get_data(as_text=True)
    response = post(client, f"/staff/me/calls/{call.id}/record", reason="free text is refused")
    assert response.status_code == 302
    db.expire_all()
    assert db.scalars(select(CallRecord)).one().reason == "loneliness"
    other = make_call(db)
    assert post(client, f"/staff/me/calls/{other.id}/record", outcome="other").status_code == 404
    with pytest.raises(ValueError):
        records.save(db, call.id, sam.id, "page", risk="extreme")


def test_silence_after_the_call_leaves_the_record_for_the_page(client, svc, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    sam = dashboard_data.sam
    call = make_call(db, caller=dashboard_data.caller)
    req = PeerRequest(call_sid=call.call_sid, call_id=call.id, language="en", peer_id=sam.id, status="ended",
                      connected_at=utcnow())
    db.add(req)
    db.flush()
    leg = RingLeg(request_id=req.id, peer_id=sam.id, call_sid="CAleg3", status="accepted")
    db.add(leg)
    db.commit()
    phone = TestCaller(client, number="+15005550006", call_sid="CAleg3")
    phone.post(f"/peer/leg/{leg.id}/after")
    phone.silence()
    assert phone.said == "No record was keyed. You can complete it on your page. Thank you. Goodbye."
    assert db.scalars(select(CallRecord)).all() == []
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    assert f"/staff/me/calls/{call.id}/record" in client.get("/staff/me").get_data(as_text=True)


def test_a_callback_left_unrecorded_is_listed_on_the_peers_page_and_recorded_there(  # type: ignore[no-untyped-def]
        client, svc, db, dashboard_data) -> None:
    sam = dashboard_data.sam
    asked_on = make_call(db, caller=dashboard_data.caller)
    now = utcnow()
    cb = CallbackRequest(call_id=asked_on.id, caller_id=dashboard_data.caller.id, status="completed",
                         number_encrypted=svc.vault.encrypt_text(NUMBER), language="en",
                         arrived_at=now - timedelta(minutes=30), updated_at=now - timedelta(minutes=8))
    db.add(cb)
    db.flush()
    attempt = CallbackAttempt(callback_id=cb.id, peer_id=sam.id, stage="ended", outcome="connected",
                              peer_call_sid="CApeercb2", started_at=now - timedelta(minutes=9), ended_at=now)
    db.add(attempt)
    db.commit()
    phone = TestCaller(client, number="+15005550006", call_sid="CApeercb2")
    phone.post(f"/callbacks/attempt/{attempt.id}/peer/after")
    assert phone.said.startswith("Before you go, key the outcome of the call.")
    phone.silence()
    assert phone.said == "No record was keyed. You can complete it on your page. Thank you. Goodbye."
    assert db.scalars(select(CallRecord)).all() == []
    # Another call cannot key a record of it (the attempt's peer leg is CApeercb2): nothing is saved.
    stranger = TestCaller(client, number="+15005550006", call_sid="CAsomeoneelse")
    stranger.post(f"/callbacks/attempt/{attempt.id}/peer/record", Digits="1")
    assert stranger.said.startswith("No record was keyed.") and db.scalars(select(CallRecord)).all() == []

    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    page = client.get("/staff/me").get_data(as_text=True)
    assert f'href="/staff/me/calls/{asked_on.id}/record">Record the callback of ' in page
    response = post(client, f"/staff/me/calls/{asked_on.id}/record", reason="relationships", outcome="talked_through",
                    referral="no", risk="none", minutes="")
    assert response.status_code == 302
    row = db.scalars(select(CallRecord)).one()
    # The minutes run from the caller answering (the request's last update) to the end of the callback.
    assert (row.call_id, row.peer_id, row.reason, row.outcome, row.referral, row.source, row.minutes) == (
        asked_on.id, sam.id, "relationships", "talked_through", False, "page", 8)
    assert "Record the callback of" not in client.get("/staff/me").get_data(as_text=True)


# Shifts -----------------------------------------------------------------------------------------


def test_recurring_shifts_keep_local_time_across_daylight_saving(db) -> None:  # type: ignore[no-untyped-def]
    ny = ZoneInfo("America/New_York")
    shifts.add_template(db, 6, 9 * 60, 13 * 60, 2, ["en"], False, None)  # Sundays 09:00-13:00
    shifts.add_template(db, 5, 22 * 60, 2 * 60, 1, ["en", "es"], False, None)  # Saturdays 22:00-02:00
    before = datetime(2026, 10, 26, 12, tzinfo=UTC)  # Monday before the clocks go back on Nov 1
    assert shifts.ensure_shifts(db, ny, before) == 4
    assert shifts.ensure_shifts(db, ny, before) == 0  # once each
    sundays = db.scalars(select(Shift).where(Shift.peers_needed == 2).order_by(Shift.starts_at)).all()
    assert [s.starts_at.replace(tzinfo=UTC).isoformat() for s in sundays] == [
        "2026-11-01T14:00:00+00:00", "2026-11-08T14:00:00+00:00"]  # 09:00 EST both (EDT ended at 2 am)
    nights = db.scalars(select(Shift).where(Shift.peers_needed == 1).order_by(Shift.starts_at)).all()
    first = nights[0]
    # Saturday Oct 31 22:00 EDT to Sunday 02:00 EST: five real hours.
    assert (first.ends_at - first.starts_at) == timedelta(hours=5)


def test_sign_up_and_drop_within_the_supervisors_rules(svc, db) -> None:  # type: ignore[no-untyped-def]
    zone = ZoneInfo("America/New_York")
    sam = make_peer(db, svc.vault, phone="+15555550321", display_name="Sam", languages=["en"])
    rosa = make_peer(db, svc.vault, phone="+15555550322", display_name="Rosa", languages=["en", "es"])
    now = datetime(2026, 11, 23, 12, tzinfo=UTC)  # a Monday
    spanish = Shift(starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=1, hours=4), peers_needed=1,
                    languages=["es"])
    soon = Shift(starts_at=now + timedelta(hours=3), ends_at=now + timedelta(hours=7), peers_needed=1,
                 languages=["en"])
    later = [Shift(starts_at=now + timedelta(days=d), ends_at=now + timedelta(days=d, hours=2), peers_needed=2,
                   languages=["en"]) for d in (2, 3, 4)]
    db.add_all([spanish, soon, *later])
    db.commit()
    shifts.set_rules(db, 2, 24, None, now)
    with pytest.raises(shifts.ShiftRuleError, match="needs a peer who speaks es"):
        shifts.sign_up(db, sam, spanish, zone, None, now)
    shifts.sign_up(db, rosa, spanish, zone, None, now)
    with pytest.raises(shifts.ShiftRuleError, match="already on that shift"):
        shifts.sign_up(db, rosa, spanish, zone, None, now)
    ana = make_peer(db, svc.vault, phone="+15555550323", display_name="Ana", languages=["es"])
    with pytest.raises(shifts.ShiftRuleError, match="That shift is full"):
        shifts.sign_up(db, ana, spanish, zone, None, now)
    shifts.sign_up(db, sam, soon, zone, None, now)
    shifts.sign_up(db, sam, later[0], zone, None, now)
    with pytest.raises(shifts.ShiftRuleError, match="already have 2 shifts that week"):
        shifts.sign_up(db, sam, later[1], zone, None, now)
    with pytest.raises(shifts.ShiftRuleError, match="up to 24 hours before"):
        shifts.drop(db, sam, soon, None, now)
    shifts.drop(db, sam, later[0], None, now)
    shifts.sign_up(db, sam, later[1], zone, None, now)
    assert [v.shift.id for v in shifts.gaps(db, now)] == [later[0].id, later[1].id, later[2].id]
    assert shifts.next_shift(db, sam.id, now).id == soon.id
    assert [a.action for a in db.scalars(select(AuditEntry).order_by(AuditEntry.id))] == [
        "shift_rules", "shift_signup", "shift_signup", "shift_signup", "shift_drop", "shift_signup"]


@pytest.fixture
def texting_svc(app_config: dict[str, object], phone_network: Any, engine: Any) -> Iterator[Services]:
    """The services of an app whose texts go to the phone network, with a SUPERVISOR_NUMBER (rows emptied after)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    app_config["supervisor_number"] = "+15555550399"
    svc = services(create_app(app_config))
    yield svc
    svc.engine.dispose()


def test_a_shift_nobody_signed_in_for_texts_the_on_call_peer_once(texting_svc, phone_network) -> None:  # type: ignore[no-untyped-def]
    svc = texting_svc
    now = utcnow()
    with svc.sessions() as db:
        late = make_peer(db, svc.vault, phone="+15555550331", display_name="Late", status="signed_off")
        backup = make_peer(db, svc.vault, phone="+15555550332", display_name="Backup", status="signed_off")
        shift = Shift(starts_at=now - timedelta(minutes=6), ends_at=now + timedelta(hours=3), languages=["en", "es"])
        on_call = Shift(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=5), on_call=True)
        fresh = Shift(starts_at=now - timedelta(minutes=2), ends_at=now + timedelta(hours=3), languages=["en"])
        db.add_all([shift, on_call, fresh])
        db.flush()
        db.add_all([ShiftSignup(shift_id=shift.id, peer_id=late.id), ShiftSignup(shift_id=on_call.id, peer_id=backup.id),
                    ShiftSignup(shift_id=fresh.id, peer_id=late.id)])
        db.commit()
        shift_id = shift.id
    assert check_shifts(svc) == [shift_id]
    assert check_shifts(svc) == []  # never twice
    [message] = phone_network.state.messages
    local = (now - timedelta(minutes=6)).astimezone(svc.settings.zone)
    assert message["To"] == "+15555550332"
    assert message["Body"] == (f"peerline: nobody has signed in for the {local:%H:%M} shift (English/Spanish). "
                               "Please sign in or find cover.")


def test_an_on_call_supervisor_is_texted_about_an_empty_shift_on_their_staff_phone(texting_svc, phone_network) -> None:  # type: ignore[no-untyped-def]
    svc = texting_svc
    now = utcnow()
    with svc.sessions() as db:
        late = make_peer(db, svc.vault, phone="+15555550351", display_name="Late", status="signed_off")
        boss = make_peer(db, svc.vault, phone="+15555550352", display_name="Boss", status="signed_off")
        db.add(StaffUser(username="boss", password_hash="x", role="supervisor", peer_id=boss.id,
                         phone_encrypted=svc.vault.encrypt_text("+15555550353")))
        shift = Shift(starts_at=now - timedelta(minutes=6), ends_at=now + timedelta(hours=3), languages=["en"])
        on_call = Shift(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=5), on_call=True)
        db.add_all([shift, on_call])
        db.flush()
        db.add_all([ShiftSignup(shift_id=shift.id, peer_id=late.id), ShiftSignup(shift_id=on_call.id, peer_id=boss.id)])
        db.commit()
    check_shifts(svc)
    assert [m["To"] for m in phone_network.state.messages] == ["+15555550353"]


def test_a_peer_hears_their_next_shift_when_they_call_in(client, svc, db) -> None:  # type: ignore[no-untyped-def]
    sam = make_peer(db, svc.vault, phone="+15555550341", status="signed_off", pin="4321")
    # Tomorrow at 9:30 am on the line's clock: 24 hours from now is not always tomorrow (on the
    # night the clocks go forward it is the day after; on the day they go back, still today).
    tomorrow = (utcnow().astimezone(svc.settings.zone) + timedelta(days=1)).date()
    starts = datetime.combine(tomorrow, time(9, 30), tzinfo=svc.settings.zone).astimezone(UTC)
    shift = Shift(starts_at=starts, ends_at=starts + timedelta(hours=4), languages=["en"])
    db.add(shift)
    db.flush()
    db.add(ShiftSignup(shift_id=shift.id, peer_id=sam.id))
    db.commit()
    phone = TestCaller(client, number="+15555550341")
    phone.call()
    phone.press("4321")
    assert phone.said.startswith("You are signed off. Your next shift starts tomorrow at 9:30 am. Callers waiting: 0.")


def test_a_peer_in_a_shift_under_way_hears_and_sees_when_it_ends(client, svc, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    from werkzeug.security import generate_password_hash

    sam = dashboard_data.sam
    sam.status = "signed_off"
    sam.pin_hash = generate_password_hash("4321")
    now = utcnow()
    ends = now + timedelta(hours=3)
    if ends.astimezone(svc.settings.zone).strftime("%H:%M") == "00:00":  # midnight is said otherwise
        ends += timedelta(minutes=5)
    shift = Shift(starts_at=now - timedelta(hours=1), ends_at=ends, languages=["en"])
    db.add(shift)
    db.flush()
    db.add(ShiftSignup(shift_id=shift.id, peer_id=sam.id))
    db.commit()
    phone = TestCaller(client, number="+15555550101")
    phone.call()
    phone.press("4321")
    local = ends.astimezone(svc.settings.zone)
    day = "today" if local.date() == now.astimezone(svc.settings.zone).date() else "tomorrow"
    hour = local.hour % 12 or 12
    part = "am" if local.hour < 12 else "pm"
    clock = f"{hour}:{local.minute:02d} {part}" if local.minute else f"{hour} {part}"
    assert phone.said.startswith(f"You are signed off. Your shift ends {day} at {clock}. Callers waiting: 0.")
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    page = client.get("/staff/me").get_data(as_text=True)
    assert "On shift now, until" in page and "My next shift" not in page


def test_my_shifts_offers_drop_only_for_shifts_far_enough_ahead(client, svc, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    sam = dashboard_data.sam
    now = utcnow()
    under_way = Shift(starts_at=now - timedelta(hours=1), ends_at=now + timedelta(hours=2), languages=["en"])
    next_week = Shift(starts_at=now + timedelta(days=6), ends_at=now + timedelta(days=6, hours=3), languages=["en"])
    db.add_all([under_way, next_week])
    db.flush()
    db.add_all([ShiftSignup(shift_id=under_way.id, peer_id=sam.id), ShiftSignup(shift_id=next_week.id, peer_id=sam.id)])
    db.commit()
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    page = html.fromstring(client.get("/staff/me/shifts").get_data(as_text=True))
    actions = {form.get("action") for form in page.xpath("//form")}
    assert f"/staff/me/shifts/{next_week.id}/drop" in actions
    assert f"/staff/me/shifts/{under_way.id}/drop" not in actions
    assert "Too close to drop: ask a supervisor to find cover." in page.text_content()


# Staff pages: roles --------------------------------------------------------------------------------


def test_staff_pages_check_roles(client, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    supervisor_only = ["/staff/hours", "/staff/callers", f"/staff/callers/{dashboard_data.caller.id}",
                       "/staff/shifts", "/staff/records"]
    for path in [*supervisor_only, "/staff/me/shifts"]:
        assert client.get(path).headers["Location"].startswith("/staff/sign-in"), path
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    for path in supervisor_only:
        assert client.get(path).status_code == 403, path
    assert client.get("/staff/me/shifts").status_code == 200
    client.post("/staff/sign-out", data={"csrf_token": _token(client)})
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    for path in supervisor_only:
        assert client.get(path).status_code == 200, path
    assert client.get("/staff/me/shifts").status_code == 403  # a supervisor login with no peer


def test_supervisor_closes_and_reopens_from_the_hours_page(client, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    post(client, "/staff/hours/close", reason="Thanksgiving", until="next thursday")  # unreadable: not closed
    assert "Cannot read the reopening time" in client.get("/staff/hours").get_data(as_text=True)
    assert audit_actions(db, "line_closed") == []
    post(client, "/staff/hours/close", reason="Thanksgiving")
    page = client.get("/staff/hours").get_data(as_text=True)
    assert "the line is CLOSED now; it opens when reopened" in page and "closed by hand: Thanksgiving" in page
    post(client, "/staff/hours/open")
    post(client, "/staff/hours/weekly", periods="mon=09:00-17:00\nsat=20:00-02:00")
    post(client, "/staff/hours/holidays", day="2026-12-25", name="Christmas")
    page = client.get("/staff/hours").get_data(as_text=True)
    assert "hours: Monday 09:00-17:00; Saturday 20:00-02:00 (+1 day)" in page
    users = {e.action: e.staff_user_id for e in db.scalars(select(AuditEntry))}
    assert set(users) >= {"line_closed", "line_opened", "hours_set", "holiday_added"}
    assert users["line_closed"] == dashboard_data.users["super"].id


def test_supervisor_adds_recurring_shifts_and_rules_and_sees_the_gaps_on_the_shifts_page(  # type: ignore[no-untyped-def]
        client, svc, db, dashboard_data) -> None:
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    tomorrow = (utcnow().astimezone(svc.settings.zone) + timedelta(days=1)).weekday()
    response = post(client, "/staff/shifts/templates", weekday=str(tomorrow), start="10:00", end="14:00",
                    peers_needed="2", languages=["en", "es"])
    assert response.status_code == 302
    post(client, "/staff/shifts/templates", weekday=str(tomorrow), start="08:00", end="20:00", peers_needed="1",
         languages=["en"], on_call="yes")
    post(client, "/staff/shifts/rules", max_shifts_per_week="3", drop_notice_hours="48")
    page = client.get("/staff/shifts").get_data(as_text=True)
    assert "10:00-14:00, 2 peers, English/Spanish" in page
    assert "08:00-20:00, 1 peer, English on call" in page
    # The next two weeks: each recurring shift twice, every one a gap until peers sign up.
    assert "(4 with gaps)" in page
    assert "<td>English, Spanish</td>" in page and "<strong>2 needed</strong>" in page
    assert "en, es" not in page and ">es<" not in page  # language names, never codes
    assert (shifts.rules(db).max_shifts_per_week, shifts.rules(db).drop_notice_hours) == (3, 48)
    template_id = db.scalars(select(Shift.template_id).where(Shift.peers_needed == 2)).first()
    assert post(client, f"/staff/shifts/templates/{template_id}/retire").status_code == 302
    assert "(2 with gaps)" in client.get("/staff/shifts").get_data(as_text=True)
    supervisor = dashboard_data.users["super"].id
    assert [(a.action, a.staff_user_id) for a in audit_actions(db, "shift_template_added")] == [
        ("shift_template_added", supervisor)] * 2
    assert [a.staff_user_id for a in audit_actions(db, "shift_rules")] == [supervisor]
    assert [a.staff_user_id for a in audit_actions(db, "shift_template_retired")] == [supervisor]


def test_with_nobody_on_call_the_unstaffed_shift_texts_the_supervisor_number(texting_svc, phone_network) -> None:  # type: ignore[no-untyped-def]
    svc = texting_svc
    now = utcnow()
    with svc.sessions() as db:
        late = make_peer(db, svc.vault, phone="+15555550333", display_name="Late", status="signed_off")
        shift = Shift(starts_at=now - timedelta(minutes=7), ends_at=now + timedelta(hours=3), languages=["es"])
        db.add(shift)
        db.flush()
        db.add(ShiftSignup(shift_id=shift.id, peer_id=late.id))
        db.commit()
        shift_id = shift.id
    assert check_shifts(svc) == [shift_id]
    [message] = phone_network.state.messages
    assert message["To"] == "+15555550399"
    assert message["Body"].startswith("peerline: nobody has signed in for the ")
    assert message["Body"].endswith(" shift (Spanish). Please sign in or find cover.")  # a name, never a code


def test_a_peer_signed_in_for_their_shift_or_outside_any_shift_sets_off_no_text(texting_svc, phone_network) -> None:  # type: ignore[no-untyped-def]
    svc = texting_svc
    now = utcnow()
    with svc.sessions() as db:
        on_time = make_peer(db, svc.vault, phone="+15555550334", display_name="On time", status="available")
        # Signed in with no shift at all: welcome, and nothing about it is an alert.
        make_peer(db, svc.vault, phone="+15555550335", display_name="Extra hands", status="available")
        shift = Shift(starts_at=now - timedelta(minutes=8), ends_at=now + timedelta(hours=3), languages=["en"])
        db.add(shift)
        db.flush()
        db.add(ShiftSignup(shift_id=shift.id, peer_id=on_time.id))
        db.commit()
    assert check_shifts(svc) == []
    assert phone_network.state.messages == []


def test_a_supervisor_blocks_and_lifts_from_the_caller_page(client, svc, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    caller_id = dashboard_data.caller.id
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    assert post(client, f"/staff/callers/{caller_id}/block", reason="", days="3").status_code == 302
    assert audit_actions(db, "caller_blocked") == []  # a block needs a reason
    assert post(client, f"/staff/callers/{caller_id}/block", reason="Threats to peers", days="3").status_code == 302
    page = client.get(f"/staff/callers/{caller_id}").get_data(as_text=True)
    assert "Threats to peers" in page
    listing = client.get("/staff/callers").get_data(as_text=True)
    assert callers.pseudonym(svc.vault, caller_id) in listing and "+1555" not in listing
    [blocked] = audit_actions(db, "caller_blocked")
    assert blocked.staff_user_id == dashboard_data.users["super"].id and "Threats" not in (blocked.detail or "")
    block_id = db.scalars(select(CallerBlock.id)).one()
    assert post(client, f"/staff/callers/blocks/{block_id}/lift").status_code == 302
    assert [a.staff_user_id for a in audit_actions(db, "caller_unblocked")] == [dashboard_data.users["super"].id]
    assert callers.active_block(db, caller_id, utcnow()) is None


def test_the_supervisor_sees_each_calls_record_with_its_labels(client, svc, db, dashboard_data) -> None:  # type: ignore[no-untyped-def]
    call = make_call(db, caller=dashboard_data.caller)
    records.save(db, call.id, dashboard_data.sam.id, "keypad", outcome="referred", referral=True)
    records.save(db, call.id, dashboard_data.sam.id, "page", reason="medication_treatment", risk="low", minutes=14)
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    page = client.get("/staff/records").get_data(as_text=True)
    assert "1 record." in page
    row = page.split("<tbody>")[1].split("</tr>")[0]
    for shown in ("Sam", "Medication treatment (buprenorphine, methadone)", "Referred", "yes", "Low", "14",
                  "Phone keypad"):
        assert shown in row, shown
    assert "medication_treatment" not in row  # labels, never codes
