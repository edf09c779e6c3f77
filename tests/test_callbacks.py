"""Callbacks that keep the caller's place: the request, the order, retries, machines, durability.

Real SQL, real Redis and RQ workers (burst SimpleWorker, and one spawned ``peerline worker``);
Twilio's REST API is the phone network at the HTTP boundary.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from rq import Queue
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler
from sqlalchemy import select

from callflows import callbacks, line, load_flows
from callflows.times import aware
from models import Call, CallbackRequest, CallRecord, Peer, utcnow
from models.tables import CallbackAttempt, PeerRequest
from queues.reconcile import reconcile_callbacks
from queues import jobs
from queues.scheduler import due_job_id, schedule_due
from queues.connection import CALLBACK_QUEUE, DEFAULT_QUEUE
from tests.conftest import DATA_KEY, zone_where_it_is
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller
from tests.workers import SpawnedWorker, wait_for, worker_env

LINE = "+15005550006"
CALLS = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"
PEER_PHONE = "+15555550301"
FLOWS = load_flows()


@pytest.fixture(autouse=True)
def net(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return phone_network


def add_peer(svc, db, phone: str = PEER_PHONE, status: str = "available") -> Peer:  # type: ignore[no-untyped-def]
    """A peer who speaks English, named by the last digits of their phone."""
    return make_peer(db, svc.vault, display_name=phone[-4:], phone=phone, status=status)


def creates(net, to: str | None = None) -> list[dict[str, list[str]]]:  # type: ignore[no-untyped-def]
    forms = [r.form for r in net.state.requests if r.method == "POST" and r.path == CALLS]
    return [f for f in forms if to is None or f["To"] == [to]]


def sid_of(net, form: dict[str, list[str]]) -> str:  # type: ignore[no-untyped-def]
    return next(sid for sid, call in net.state.calls.items() if call.get("Url") == form["Url"][0])


def dial_in(client, net, number: str, language_key: str = "1") -> TestCaller:  # type: ignore[no-untyped-def]
    caller = TestCaller(client, number=number)
    net.state.calls[caller.call_sid] = {"sid": caller.call_sid, "account_sid": TEST_ACCOUNT_SID,
                                        "status": "in-progress", "direction": "inbound", "From": number,
                                        "To": LINE, "redirect_seq": 0}
    caller.call()
    caller.press(language_key)  # 1 English, 2 Spanish
    caller.to_menu()
    return caller


def finish_request(caller: TestCaller, window_key: str = "1", message_key: str = "1") -> None:
    """At the number read-back: 1 (right), a window, message yes (1) or no (2)."""
    caller.press("1")
    assert caller.said.startswith("When is a safe time for us to call you?")
    caller.press(window_key)
    assert caller.said.startswith("If nobody answers when we call, may we leave a short message?")
    caller.press(message_key)
    assert caller.twiml.find("Hangup") is not None


def request_callback(client, net, number: str, **keys: str) -> TestCaller:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, number)
    caller.press("3")  # main menu: a call back
    finish_request(caller, **keys)
    return caller


def pending(db, number: str, svc) -> CallbackRequest:  # type: ignore[no-untyped-def]
    vault = svc.vault
    db.expire_all()
    return next(cb for cb in db.scalars(select(CallbackRequest).order_by(CallbackRequest.id))
                if vault.decrypt_text(cb.number_encrypted) == number)


def make_callback(svc, db, number: str, arrived_at: datetime, now: datetime, window: str = "now",  # type: ignore[no-untyped-def]
                  allow_message: bool = True) -> CallbackRequest:
    not_before, not_after = callbacks.window_bounds(window, now, svc.settings)
    cb = CallbackRequest(number_encrypted=svc.vault.encrypt_text(number), language="en", window=window,
                         allow_message=allow_message, status="pending", arrived_at=arrived_at,
                         not_before=not_before, not_after=not_after, due_at=not_before)
    db.add(cb)
    db.commit()
    return cb


def peer_picks_up(client, net, form) -> TestCaller:  # type: ignore[no-untyped-def]
    phone = TestCaller(client, number=LINE, call_sid=sid_of(net, form))
    phone.post(form["Url"][0], CallStatus="in-progress", Direction="outbound-api", To=form["To"][0])
    return phone


# The request -------------------------------------------------------------------------------


def test_caller_id_is_read_back_slowly_then_window_and_message(svc, db, client, net, redis) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "+15555550199")
    caller.press("3")
    assert caller.said.startswith("We will call you back at this number: 5 5 5, 5 5 5, 0 1 9 9 Is that the right number?")
    prosody = caller.gather().find("Say/prosody")
    assert prosody.get("rate") == "slow" and prosody.text == "5 5 5, 5 5 5, 0 1 9 9"
    assert "If that number is right, press 1. To key a different number, press 2." in caller.said
    caller.press("*")  # star repeats
    assert "5 5 5, 5 5 5, 0 1 9 9" in caller.said
    finish_request(caller, window_key="1", message_key="2")
    assert caller.said == ("Thank you. We will call you back as soon as a peer is free, from this line's number. "
                           "You keep your place in line. Thank you for calling Peer Line. Take care. "
                           "If you ever feel unsafe, call or text 9 8 8, any time.")
    assert caller.twiml.find("Hangup") is not None
    cb = pending(db, "+15555550199", svc)
    assert cb.status == "pending" and cb.window == "now" and cb.allow_message is False
    assert aware(cb.due_at) <= utcnow() < aware(cb.not_after)
    # The job that offers it is in RQ under its deterministic id.
    assert Queue(CALLBACK_QUEUE, connection=redis).job_ids == [due_job_id(cb.id, 0)]


def test_withheld_number_keys_one_and_hears_what_is_wrong(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "anonymous")
    caller.press("3")
    assert caller.said.startswith("Your number is hidden, so we cannot see it. Please key the phone number")
    caller.post(caller.gather().get("action"), Digits="555019")
    assert caller.said.startswith("That number has only 6 digits. A phone number here has 10 digits, starting with the area code.")
    caller.post(caller.gather().get("action"), Digits="0555501234")
    assert caller.said.startswith("That number does not start with an area code.")
    caller.post(caller.gather().get("action"), Digits="6175550123")
    assert "6 1 7, 5 5 5, 0 1 2 3" in caller.said
    finish_request(caller, window_key="4", message_key="1")
    assert "between 5 pm and 9 pm" in caller.said
    cb = pending(db, "+16175550123", svc)
    assert cb.window == "evening" and cb.allow_message is True and cb.caller_id is None


def test_one_digit_keyed_is_said_in_the_singular(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "anonymous")
    caller.press("3")
    caller.post(caller.gather().get("action"), Digits="5")
    assert caller.said.startswith("That number has only 1 digit. A phone number here has 10 digits")


def test_windows_use_the_line_time_zone_across_midnight_and_dst(svc) -> None:  # type: ignore[no-untyped-def]
    settings = svc.settings.replace(callback_windows="morning=9-12,afternoon=12-17,evening=20-2")
    ny = settings.zone
    # 10 pm in New York: the evening window (8 pm to 2 am) is open now and closes at 2 am.
    now = datetime(2026, 7, 1, 22, 0, tzinfo=ny)
    start, end = callbacks.window_bounds("evening", now, settings)
    assert start == now and end == datetime(2026, 7, 2, 2, 0, tzinfo=ny)
    # 1 am: still yesterday's evening window.
    start, end = callbacks.window_bounds("evening", datetime(2026, 7, 2, 1, 0, tzinfo=ny), settings)
    assert end == datetime(2026, 7, 2, 2, 0, tzinfo=ny)
    # Morning asked at 3 pm is tomorrow at 9 am local, across the switch to winter time (EDT -> EST).
    start, _ = callbacks.window_bounds("morning", datetime(2026, 10, 31, 15, 0, tzinfo=ny), settings)
    assert start.astimezone(ny) == datetime(2026, 11, 1, 9, 0, tzinfo=ny)
    assert start == datetime(2026, 11, 1, 14, 0, tzinfo=timezone.utc)  # 9 am EST is 14:00 UTC
    assert callbacks.spoken_time(datetime(2026, 7, 1, 19, 40, tzinfo=timezone.utc), settings, FLOWS["en"]) == "3:40 pm"


@pytest.mark.parametrize(("hour", "minute", "en", "es"), [
    (15, 40, "3:40 pm", "las 3:40 de la tarde"),
    (17, 0, "5 pm", "las 5 de la tarde"),
    (13, 0, "1 pm", "la una de la tarde"),
    (13, 15, "1:15 pm", "la 1:15 de la tarde"),
    (12, 0, "12 pm", "las 12 del mediodía"),
    (9, 5, "9:05 am", "las 9:05 de la mañana"),
    (21, 0, "9 pm", "las 9 de la noche"),
    (0, 30, "12:30 am", "las 12:30 de la madrugada"),
    (2, 0, "2 am", "las 2 de la madrugada"),
])
def test_times_are_said_as_people_say_them_in_each_language(hour: int, minute: int, en: str, es: str) -> None:
    # Spanish speakers say the hour on a 12-hour clock with the part of the day ("de la tarde"),
    # not "am/pm" and not a 24-hour clock (which is for schedules in writing).
    assert callbacks.spoken_clock(hour, minute, FLOWS["en"]) == en
    assert callbacks.spoken_clock(hour, minute, FLOWS["es"]) == es


def test_a_spanish_caller_hears_the_window_as_spanish_speakers_say_it(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "+15555550197", language_key="2")
    caller.press("3")
    caller.press("1")  # el número es correcto
    caller.press("4")  # por la noche
    caller.press("2")  # sin mensaje
    assert "entre las 5 de la tarde y las 9 de la noche" in caller.said
    assert " pm" not in caller.said and " am" not in caller.said


@pytest.fixture
def one_am_line(app_config):  # type: ignore[no-untyped-def]
    """A line where it is about 1 am now, with an evening window to 3 am: open since 8 pm yesterday evening."""
    app_config["line_timezone"] = zone_where_it_is(1)
    app_config["callback_windows"] = "morning=9-12,afternoon=12-17,evening=20-3"


def test_after_midnight_an_evening_window_open_since_yesterday_is_promised_from_now(  # type: ignore[no-untyped-def]
        one_am_line, svc, db, client, net) -> None:
    assert utcnow().astimezone(svc.settings.zone).hour == 1  # one_am_line came before the app
    caller = dial_in(client, net, "+15555550196")
    caller.press("3")
    finish_request(caller, window_key="4", message_key="2")
    # Not "today between 8 pm and 3 am": that 8 pm was yesterday's, and today's is tonight.
    assert re.search(r"We will call you back today between 1(:\d\d)? am and 3 am,", caller.said), caller.said
    cb = pending(db, "+15555550196", svc)
    assert aware(cb.not_before) <= utcnow() < aware(cb.not_after) <= utcnow() + timedelta(hours=2)


@pytest.mark.parametrize(("keys", "heard"), [
    (["5"], "Your call back is not saved. What would you like to do?"),  # back, at the number read-back
    (["1", "5"], "Your call back is not saved. What would you like to do?"),  # back, at the window
    ([None, None], "Your call back is not saved. I'll take you back to the main menu now. What would you like"),
])
def test_leaving_a_callback_request_says_it_is_not_saved(svc, db, client, net, keys, heard) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "+15555550196")
    caller.press("3")
    for key in keys:
        caller.press(key) if key else caller.silence()
    assert caller.said.startswith(heard)
    db.expire_all()
    assert db.scalar(select(CallbackRequest)).status == "draft"  # never dispatched


def test_a_person_from_a_callback_request_says_it_is_not_saved_first(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "+15555550195")
    caller.press("3")
    caller.press("0")
    assert caller.said == "Your call back is not saved."
    assert caller.twiml.find("Redirect").text.startswith(f"{PUBLIC_BASE}/voice/action/person?")
    withheld = dial_in(client, net, "anonymous")
    withheld.press("3")  # a hidden number: the keypad asks for one
    withheld.post(withheld.gather().get("action"), Digits="0")
    assert withheld.said == "Your call back is not saved."


def test_a_silent_caller_hears_each_default_of_the_request_before_it_is_taken(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    caller = dial_in(client, net, "+15555550194")
    caller.press("3")
    caller.press("1")
    caller.silence()
    caller.silence()
    assert caller.said == "I'll choose for you: as soon as a peer is free."
    caller.follow()
    assert caller.said.startswith("If nobody answers when we call, may we leave a short message?")
    caller.silence()
    caller.silence()
    assert caller.said == "To be safe, we will not leave a message."
    caller.follow()
    assert caller.said.startswith("Thank you. We will call you back as soon as a peer is free")
    cb = pending(db, "+15555550194", svc)
    assert cb.status == "pending" and cb.allow_message is False
    again = TestCaller(client, number="+15555550194")
    again.call()
    again.silence()
    again.silence()
    assert again.said == "Nothing was chosen, so nothing changes."
    again.follow()
    assert again.said.startswith("All right. Your call back is kept")


def test_a_second_call_hears_the_pending_callback_and_can_cancel_it(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    request_callback(client, net, "+15555550198", window_key="2")
    again = TestCaller(client, number="+15555550198")
    again.call()
    assert "You have a call back waiting, asked for at" in again.said
    assert "To keep your call back, press 1. To cancel it, press 2." in again.said
    again.press("1")
    assert again.said.startswith("All right. Your call back is kept")
    assert pending(db, "+15555550198", svc).status == "pending"
    third = TestCaller(client, number="+15555550198")
    third.call()
    third.press("2")
    assert third.said.startswith("All right. Your call back is canceled.")
    assert pending(db, "+15555550198", svc).status == "canceled"
    fourth = TestCaller(client, number="+15555550198")
    fourth.call()
    assert "call back waiting" not in fourth.said


# Place in line, dispatch, the two legs ------------------------------------------------------


def test_free_peer_takes_callbacks_and_waiting_callers_in_arrival_order(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    peer1 = add_peer(svc, db, "+15555550311", status="busy")
    peer2 = add_peer(svc, db, "+15555550312", status="busy")
    now = utcnow()
    early = make_callback(svc, db, "+15555550401", now - timedelta(minutes=20), now)
    db.add(PeerRequest(call_sid="CAwaiting", language="en", status="waiting", arrived_at=now - timedelta(minutes=10)))
    db.commit()
    late = make_callback(svc, db, "+15555550402", now - timedelta(minutes=5), now)
    # One peer comes free: the callback that arrived first, not the later caller on hold.
    line.set_peer_status(db, svc, db.get(Peer, peer1.id), "available", now)
    line.dispatch(db, svc, now)
    assert [f["To"] for f in creates(net)] == [["+15555550311"]]
    assert creates(net)[0]["Url"][0].startswith(f"{PUBLIC_BASE}/callbacks/attempt/")
    db.expire_all()
    assert db.get(CallbackRequest, early.id).status == "dialing"
    # The next peer: the caller on hold (arrived 10 minutes ago) before the later callback.
    line.set_peer_status(db, svc, db.get(Peer, peer2.id), "available", now)
    line.dispatch(db, svc, now)
    second = creates(net)[1]
    assert second["To"] == ["+15555550312"] and "/peer/leg/" in second["Url"][0]
    assert db.get(CallbackRequest, late.id).status == "pending"


def test_the_callback_whisper_names_the_callers_language_when_it_is_not_the_peers_own(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    # A peer who speaks English first and Spanish too hears the line in English: the caller speaks Spanish.
    make_peer(db, svc.vault, display_name="both", phone=PEER_PHONE, languages=("en", "es"))
    now = utcnow()
    cb = make_callback(svc, db, "+15555550409", datetime(2026, 7, 1, 19, 40, tzinfo=timezone.utc), now)
    cb.language = "es"
    db.commit()
    line.dispatch(db, svc, now)
    peer = peer_picks_up(client, net, creates(net)[0])
    assert peer.said.startswith("Callback for a caller who called at 3:40 pm. Press 1 to call them now. "
                                "This caller speaks Spanish.")
    whisper = "Callback for a caller who called at 3:40 pm. Press 1 to call them now. This caller speaks Spanish."
    assert peer.said == f"{whisper} {whisper} No key was pressed, so the call goes to another peer. Goodbye."


def test_peer_first_then_caller_with_machine_detection_then_connected(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    arrived = datetime(2026, 7, 1, 19, 40, tzinfo=timezone.utc)  # 3:40 pm in New York
    now = utcnow()
    cb = make_callback(svc, db, "+15555550403", arrived, now)
    line.dispatch(db, svc, now)
    (peer_form,) = creates(net)
    assert peer_form["From"] == [LINE] and peer_form["StatusCallback"][0].endswith("/peer/status")
    peer = peer_picks_up(client, net, peer_form)
    assert peer.said.startswith("Callback for a caller who called at 3:40 pm. Press 1 to call them now.")
    assert "0403" not in peer.said and "4 0 3" not in peer.said
    peer.press("1")
    assert peer.said == "Calling them now. Please stay on the line."
    room = peer.twiml.find("Dial/Conference").text
    caller_form = creates(net, "+15555550403")[0]
    assert caller_form["From"] == [LINE] and caller_form["MachineDetection"] == ["DetectMessageEnd"]
    assert caller_form["StatusCallback"][0].endswith("/caller/status")
    person = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    person.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="human")
    assert person.said == "Hello. This is the call back you asked for. Connecting you now."
    person.follow()  # after the greeting, into the room while the peer is there
    assert person.said == "" and person.twiml.find("Dial/Conference").text == room
    db.expire_all()
    # Not completed before the caller is in the room (hanging up at the greeting is not a call).
    assert db.get(CallbackRequest, cb.id).status == "dialing"
    attempt = db.scalar(select(CallbackAttempt))
    assert attempt.stage == "connected" and attempt.answered_by == "human"
    # The peer leaves the room first: the caller hears the call is over, and the crisis line, then goodbye.
    person.post(person.twiml.find("Dial").get("action"), DialCallStatus="completed")
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "completed"
    assert person.said == ("Your call with the peer has ended. "
                           "Take care. If you ever feel unsafe, call or text 9 8 8, any time.")
    assert [verb.tag for verb in person.twiml] == ["Say", "Say", "Hangup"]
    # The caller hangs up: the peer's leg ends and the peer goes into wrap-up.
    person.post(caller_form["StatusCallback"][0], CallStatus="completed")
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed")
    db.expire_all()
    assert db.scalar(select(CallbackAttempt)).outcome == "connected"
    assert db.scalar(select(Peer)).status == "wrap_up"


def test_after_a_callback_the_peer_keys_the_call_record_of_the_call_it_answers(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    caller = request_callback(client, net, "+15555550406")
    asked_on = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    line.dispatch(db, svc, utcnow())
    (peer_form,) = creates(net)
    peer = peer_picks_up(client, net, peer_form)
    peer.press("1")
    caller_form = creates(net, "+15555550406")[0]
    person = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    person.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="human")
    person.follow()
    # The caller hangs up (their Dial into the room ends first, then their call); the peer's side of the room
    # ends and wrap-up starts with the record, as after a live call.
    person.post(person.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    person.post(caller_form["StatusCallback"][0], CallStatus="completed")
    peer.post(peer.twiml.find("Dial").get("action"), DialCallStatus="completed")
    assert peer.said == ("Before you go, key the outcome of the call. 1, talked it through. 2, referred. "
                         "3, crisis hand-off. 4, ended early. 5, other.")
    peer.press("1")
    assert peer.said == "Was a referral given? Press 1 for yes, 2 for no."
    peer.press("2")
    assert peer.said == "Thank you. Your call record is saved. Thank you. Goodbye."
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed")
    db.expire_all()
    row = db.scalars(select(CallRecord)).one()
    # Kept against the call on which the caller asked for the callback, by the peer who called back.
    assert (row.call_id, row.peer_id, row.outcome, row.referral, row.source, row.minutes) == (
        asked_on.id, db.scalar(select(Peer)).id, "talked_through", False, "keypad", 1)
    assert db.scalar(select(Peer)).status == "wrap_up"


def test_a_callback_that_never_reached_the_caller_asks_for_no_record(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    request_callback(client, net, "+15555550407")
    line.dispatch(db, svc, utcnow())
    (peer_form,) = creates(net)
    peer = peer_picks_up(client, net, peer_form)
    peer.press("1")
    # The peer hangs up in the room while the caller's phone still rings: nothing was said to record.
    # (Twilio's Dial action says so with a final CallStatus; without one it is the peer's * under hangupOnStar.)
    peer.post(peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    assert peer.said == "Thank you. Goodbye."
    assert db.scalars(select(CallRecord)).all() == []


def test_machine_gets_a_neutral_message_only_if_allowed_and_a_retry(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    now = utcnow()
    allowed = make_callback(svc, db, "+15555550404", now - timedelta(minutes=3), now, allow_message=True)
    line.dispatch(db, svc, now)
    peer_form = creates(net)[0]
    peer = peer_picks_up(client, net, peer_form)
    peer_sid = peer.call_sid
    peer.press("1")
    caller_form = creates(net, "+15555550404")[0]
    machine = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    machine.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="machine_end_beep")
    assert machine.said == "This is a return call you asked for. We will try again later."
    assert "peer" not in machine.said.lower() and machine.twiml.find("Hangup") is not None
    db.expire_all()
    cb = db.get(CallbackRequest, allowed.id)
    assert cb.status == "pending" and cb.attempts == 1 and cb.outcome == "machine"
    assert timedelta(minutes=9) < aware(cb.due_at) - now <= timedelta(minutes=11)  # the 10m retry
    # The peer is told, and hears it on their own leg.
    redirect = [r.form for r in net.state.requests if r.path.endswith(f"/Calls/{peer_sid}.json")]
    assert redirect and redirect[-1]["Url"][0].endswith("/peer/notice")
    peer.post(redirect[-1]["Url"][0])
    assert peer.said == "They did not answer. We will try again later. Thank you."
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "available"
    # Without permission a machine hears nothing at all.
    silent = make_callback(svc, db, "+15555550405", now - timedelta(minutes=2), now, allow_message=False)
    line.dispatch(db, svc, now)
    peer2 = peer_picks_up(client, net, creates(net, PEER_PHONE)[-1])
    peer2.press("1")
    form = creates(net, "+15555550405")[0]
    assert form["MachineDetection"] == ["Enable"]
    quiet = TestCaller(client, number=LINE, call_sid=sid_of(net, form))
    quiet.post(form["Url"][0], CallStatus="in-progress", AnsweredBy="machine_start")
    assert quiet.said == "" and quiet.twiml.find("Hangup") is not None
    db.expire_all()
    assert db.get(CallbackRequest, silent.id).status == "pending"


def test_no_answer_retries_with_backoff_then_missed(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    start = utcnow()
    cb = make_callback(svc, db, "+15555550406", start - timedelta(minutes=1), start)
    now = start
    expected_waits = [timedelta(minutes=10), timedelta(hours=1)]
    for attempt_no in range(1, 4):
        line.dispatch(db, svc, now)
        peer_form = creates(net, PEER_PHONE)[-1]
        peer = peer_picks_up(client, net, peer_form)
        peer.press("1")
        caller_form = creates(net, "+15555550406")[-1]
        phone = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
        failed_at = utcnow()
        phone.post(caller_form["StatusCallback"][0], CallStatus="busy" if attempt_no == 2 else "no-answer")
        peer.post(peer_form["StatusCallback"][0], CallStatus="completed")
        db.expire_all()
        row = db.get(CallbackRequest, cb.id)
        assert row.attempts == attempt_no
        if attempt_no < 3:
            assert row.status == "pending"
            due = aware(row.due_at)
            assert due is not None
            wait = expected_waits[attempt_no - 1]
            assert wait <= due - failed_at < wait + timedelta(seconds=30)
            # Not offered before its retry time, even with the peer free.
            line.dispatch(db, svc, due - timedelta(seconds=1))
            assert len(creates(net, PEER_PHONE)) == attempt_no
            now = due
        else:
            assert row.status == "missed"
    outcomes = [a.outcome for a in db.scalars(select(CallbackAttempt).order_by(CallbackAttempt.id))]
    assert outcomes == ["no_answer", "busy", "no_answer"]
    assert len(creates(net, "+15555550406")) == 3


def test_a_retry_past_the_window_is_missed_and_a_closed_window_expires(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550407", now, now)
    cb.not_after = now + timedelta(minutes=5)  # the 10-minute retry would fall outside
    db.commit()
    line.dispatch(db, svc, now)
    peer = peer_picks_up(client, net, creates(net)[0])
    peer.press("1")
    form = creates(net, "+15555550407")[0]
    TestCaller(client, number=LINE, call_sid=sid_of(net, form)).post(form["StatusCallback"][0], CallStatus="no-answer")
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "missed"
    later = make_callback(svc, db, "+15555550408", now, now - timedelta(hours=5))  # a "now" window long closed
    reconcile_callbacks(svc, now)
    db.expire_all()
    assert db.get(CallbackRequest, later.id).status == "missed"


def test_a_peer_who_left_while_the_caller_rang_is_not_rung_again_at_once(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    peer_row = add_peer(svc, db)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550414", now - timedelta(minutes=2), now)
    line.dispatch(db, svc, now)
    (peer_form,) = creates(net)
    peer = peer_picks_up(client, net, peer_form)
    peer.press("1")
    (caller_form,) = creates(net, "+15555550414")
    caller_sid = sid_of(net, caller_form)
    # The peer hangs up while the caller's phone rings: that call is canceled, the callback
    # goes back in line (no attempt used up) and the peer is free again.
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed")
    left_at = utcnow()
    assert [(r.method, r.form) for r in net.state.requests if r.path.endswith(f"/Calls/{caller_sid}.json")] == [
        ("POST", {"Status": ["canceled"]})]
    db.expire_all()
    assert db.scalar(select(CallbackAttempt)).outcome == "peer_left"
    row = db.get(CallbackRequest, cb.id)
    assert (row.status, row.attempts) == ("pending", 0)
    assert db.get(Peer, peer_row.id).status == "available"
    # Free, but not rung again for this callback at once (the status callback's own dispatch
    # included), nor a moment before RETRY_SAME_PEER_AFTER has passed...
    assert len(creates(net, PEER_PHONE)) == 1
    line.dispatch(db, svc, left_at + callbacks.RETRY_SAME_PEER_AFTER - timedelta(seconds=1))
    assert len(creates(net, PEER_PHONE)) == 1
    # ...then offered it again like any free peer.
    line.dispatch(db, svc, left_at + callbacks.RETRY_SAME_PEER_AFTER + timedelta(seconds=1))
    assert len(creates(net, PEER_PHONE)) == 2


def test_another_free_peer_is_offered_the_callback_the_first_one_left(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    first = add_peer(svc, db, "+15555550331")
    second = add_peer(svc, db, "+15555550332", status="busy")
    now = utcnow()
    make_callback(svc, db, "+15555550415", now - timedelta(minutes=2), now)
    line.dispatch(db, svc, now)
    (peer_form,) = creates(net)
    assert peer_form["To"] == ["+15555550331"]
    peer = peer_picks_up(client, net, peer_form)
    peer.press("1")
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed")  # left while the caller's phone rang
    db.expire_all()
    assert db.get(Peer, first.id).status == "available"
    line.set_peer_status(db, svc, db.get(Peer, second.id), "available", utcnow())
    assert [f["To"] for f in creates(net) if f["To"] != ["+15555550415"]] == [["+15555550331"], ["+15555550332"]]


def test_concurrent_outbound_callbacks_are_capped(svc, db, client, net, app_config) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        add_peer(svc, db, f"+1555555032{i}")
    now = utcnow()
    for i in range(4):
        make_callback(svc, db, f"+1555555050{i}", now - timedelta(minutes=10 - i), now)
    line.dispatch(db, svc, now)
    assert len(creates(net)) == svc.settings.callback_max_concurrent == 2


# Durability ---------------------------------------------------------------------------------


def test_redis_flushed_midway_the_reconciler_recovers_without_a_double_call(svc, db, client, net, redis, work_jobs) -> None:  # type: ignore[no-untyped-def]
    peer = add_peer(svc, db, status="busy")
    request_callback(client, net, "+15555550409")
    cb = pending(db, "+15555550409", svc)
    assert Queue(CALLBACK_QUEUE, connection=redis).job_ids == [due_job_id(cb.id, 0)]
    redis.flushdb()  # every job is gone, the wrap-up end that would have offered this peer too
    db.get(Peer, peer.id).status = "available"
    db.commit()
    assert creates(net) == []
    assert reconcile_callbacks(svc) == [cb.id]
    assert len(creates(net, PEER_PHONE)) == 1  # the reconciler offered it to the free peer
    work_jobs(CALLBACK_QUEUE, DEFAULT_QUEUE)  # the re-created job finds it already dialling
    assert reconcile_callbacks(svc) == []
    work_jobs(CALLBACK_QUEUE, DEFAULT_QUEUE)
    assert len(creates(net, PEER_PHONE)) == 1
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "dialing"


def test_rq_job_offers_the_callback_when_its_time_comes(svc, db, client, net, work_jobs) -> None:  # type: ignore[no-untyped-def]
    add_peer(svc, db)
    request_callback(client, net, "+15555550410")
    assert creates(net) == []  # nothing happens inside the web request
    work_jobs(CALLBACK_QUEUE, DEFAULT_QUEUE)
    (form,) = creates(net)
    assert form["To"] == [PEER_PHONE]
    work_jobs(CALLBACK_QUEUE, DEFAULT_QUEUE)
    assert len(creates(net)) == 1


class Gate:
    """Holds the phone network's answer to Calls.json (after the call was placed) while closed."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.closed = threading.Event()
        self.arrived = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        result = self.app(environ, start_response)
        if self.closed.is_set() and environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"].endswith("/Calls.json"):
            self.arrived.set()
            self.release.wait(30)
        return result


def test_worker_killed_mid_dispatch_loses_nothing_and_never_calls_twice(svc, db, client, net, work_jobs,  # type: ignore[no-untyped-def]
                                                                      database_url, redis_url, tmp_path) -> None:
    from werkzeug.serving import make_server

    from simulator.phone_network import create_phone_network

    gate = Gate(create_phone_network(net.state))
    server = make_server("127.0.0.1", 0, gate, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    add_peer(svc, db)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550411", now - timedelta(minutes=4), now)
    gate.closed.set()
    env = dict(os.environ, DATABASE_URL=database_url, REDIS_URL=redis_url, PUBLIC_BASE_URL=PUBLIC_BASE,
               TWILIO_API_BASE_URL=f"http://127.0.0.1:{server.server_port}", TWILIO_ACCOUNT_SID=TEST_ACCOUNT_SID,
               TWILIO_AUTH_TOKEN=TEST_AUTH_TOKEN, TWILIO_PHONE_NUMBER=LINE, PEERLINE_DATA_KEY=DATA_KEY,
               PEERLINE_SECRET_KEY="test-secret-key", PEERLINE_INSTANCE_PATH=str(tmp_path / "worker"))
    peerline = Path(sys.executable).parent / "peerline"
    worker = subprocess.Popen([str(peerline), "worker"], env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # The worker's start-up reconciler dials the peer; kill it before Twilio's answer is stored.
        assert gate.arrived.wait(60), worker.stderr.read().decode() if worker.poll() is not None else "no call"
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        gate.closed.clear()
        gate.release.set()
    assert len(creates(net, PEER_PHONE)) == 1
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "dialing"
    assert db.scalar(select(CallbackAttempt)).peer_call_sid is None  # killed before it was stored
    # Recovery: the reconciler and a fresh worker run; nothing dials again.
    reconcile_callbacks(svc)
    work_jobs(CALLBACK_QUEUE, DEFAULT_QUEUE)
    assert len(creates(net, PEER_PHONE)) == 1
    # Twilio's own webhooks carry on: the peer answers, accepts, the caller is dialled once.
    peer = peer_picks_up(client, net, creates(net, PEER_PHONE)[0])
    assert peer.said.startswith("Callback for a caller who called at")
    peer.press("1")
    caller_form = creates(net, "+15555550411")[0]
    person = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    person.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="human")
    person.follow()
    assert person.twiml.find("Dial/Conference") is not None
    assert len(creates(net, PEER_PHONE)) == 1 and len(creates(net, "+15555550411")) == 1
    person.post(person.twiml.find("Dial").get("action"), DialCallStatus="completed")  # they talked, in the room
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "completed"
    server.shutdown()


# On time -----------------------------------------------------------------------------------


class RingTimes:
    """In front of the phone network: when each Calls.json POST (a phone rung) arrived."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.times: list[float] = []
        self.rung = threading.Event()

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        if environ["REQUEST_METHOD"] == "POST" and environ["PATH_INFO"].endswith("/Calls.json"):
            self.times.append(time.time())
            self.rung.set()
        return self.app(environ, start_response)


def test_a_callback_is_offered_at_its_due_time_by_a_real_worker(svc, db, net, redis, app_config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """RQ's scheduler keeps whole seconds: scheduled at 12:00:02.99, the job could run at 12:00:02,
    find the callback not due, and leave it to the next tick, up to a minute later."""
    from werkzeug.serving import make_server

    from simulator.phone_network import create_phone_network

    rings = RingTimes(create_phone_network(net.state))
    server = make_server("127.0.0.1", 0, rings, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    add_peer(svc, db)
    worker = SpawnedWorker(worker_env(app_config, f"http://127.0.0.1:{server.server_port}"), tmp_path / "worker.log")
    try:
        # Its scheduler is running (the tick it scheduled at start comes a minute later).
        wait_for(lambda: redis.exists(RQScheduler.get_locking_key(CALLBACK_QUEUE)), 60, "the worker's scheduler",
                 worker)
        now = utcnow()
        due = now.replace(microsecond=990_000) + timedelta(seconds=2)  # 1.0 to 3.0 s from now
        cb = make_callback(svc, db, "+15555550416", now - timedelta(minutes=1), now)
        cb.due_at = due
        db.commit()
        svc.jobs.callback_due(cb.id, cb.attempts, due)  # as the rules schedule it
        wait_for(rings.rung.is_set, 90, "the peer's phone to ring", worker)
    finally:
        worker.stop()
        server.shutdown()
    late = rings.times[0] - due.timestamp()
    assert 0 <= late < 3, f"offered {late:.2f} s after its due time"
    assert creates(net) and creates(net)[0]["To"] == [PEER_PHONE]
    job = Job.fetch(due_job_id(cb.id, 0), connection=redis)
    # It ran once, at its time: never early, never "not yet due".
    assert (job.get_status(), job.return_value(), job.number_of_retries) == (
        "finished", "dispatched (1 calls placed)", None)


def test_a_callback_job_that_runs_early_runs_again_at_its_due_time(svc, db, net, redis, work_jobs) -> None:  # type: ignore[no-untyped-def]
    """Another machine's clock ahead of ours runs the job early: it comes back at its time, not at the next tick."""
    add_peer(svc, db)
    now = utcnow()
    due = now + timedelta(seconds=30, milliseconds=400)
    cb = make_callback(svc, db, "+15555550417", now - timedelta(minutes=1), now)
    cb.due_at = due
    db.commit()
    job_id = due_job_id(cb.id, 0)
    callbacks_queue = Queue(CALLBACK_QUEUE, connection=redis)
    callbacks_queue.enqueue(jobs.callback_due, cb.id, job_id=job_id)  # run now: early
    work_jobs(CALLBACK_QUEUE)
    assert creates(net) == []
    registry = ScheduledJobRegistry(queue=callbacks_queue)
    assert registry.get_job_ids() == [job_id]
    assert due <= registry.get_scheduled_time(job_id) < due + timedelta(seconds=2)
    assert Job.fetch(job_id, connection=redis).get_status() == "scheduled"
    assert reconcile_callbacks(svc, now) == []  # waiting: the reconciler leaves it alone


def test_a_callback_due_at_a_fraction_of_a_second_is_scheduled_at_the_next_whole_second(svc, db, redis) -> None:  # type: ignore[no-untyped-def]
    due = utcnow().replace(microsecond=250_000) + timedelta(minutes=5)
    schedule_due(redis, 42, 1, due)
    registry = ScheduledJobRegistry(queue=Queue(CALLBACK_QUEUE, connection=redis))
    assert registry.get_scheduled_time(due_job_id(42, 1)) == due.replace(microsecond=0) + timedelta(seconds=1)
    whole = due.replace(microsecond=0) + timedelta(minutes=1)
    schedule_due(redis, 43, 1, whole)
    assert registry.get_scheduled_time(due_job_id(43, 1)) == whole


# Done when ---------------------------------------------------------------------------------


def test_on_hold_callback_is_called_back_ahead_of_a_later_caller(svc, db, client, net, work_jobs) -> None:  # type: ignore[no-untyped-def]
    """A caller on hold asks for a callback, hangs up, and is called back when the one peer is free,
    ahead of a caller who phoned later and is still on hold."""
    peer = add_peer(svc, db, status="busy")
    first = dial_in(client, net, "+15555550412")
    first.press("1")  # talk to a peer: nobody free, so the hold queue
    enqueue = first.twiml.find("Enqueue")
    first.post(enqueue.get("waitUrl"), QueuePosition="1")
    first.press("2")  # a callback that keeps my place
    assert first.twiml.find("Leave") is not None
    first.post(enqueue.get("action"), QueueResult="leave")
    assert first.said.startswith("We will call you back at this number: 5 5 5, 5 5 5, 0 4 1 2")
    finish_request(first, window_key="1", message_key="1")
    first.post("/voice/status", CallStatus="completed", CallDuration="95")  # hangs up
    cb = pending(db, "+15555550412", svc)
    req = db.scalar(select(PeerRequest).where(PeerRequest.call_sid == first.call_sid))
    assert aware(cb.arrived_at) == aware(req.arrived_at)
    work_jobs(CALLBACK_QUEUE, DEFAULT_QUEUE)  # its job runs, but the one peer is still busy
    assert creates(net) == []
    later = dial_in(client, net, "+15555550413")
    later.press("1")
    later_wait = later.twiml.find("Enqueue").get("waitUrl")
    # The peer finishes their call; wrap-up is over by the clock at the next hold poll.
    row = db.get(Peer, peer.id)
    row.status, row.status_changed_at = "wrap_up", utcnow() - timedelta(hours=1)
    db.commit()
    later.post(later_wait, QueuePosition="1")
    (peer_form,) = creates(net)
    peer_phone = peer_picks_up(client, net, peer_form)
    assert peer_phone.said.startswith("Callback for a caller who called at")
    peer_phone.press("1")
    (caller_form,) = creates(net, "+15555550412")
    back = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    back.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="human")
    assert back.said == "Hello. This is the call back you asked for. Connecting you now."
    back.follow()
    assert back.twiml.find("Dial/Conference").text == peer_phone.twiml.find("Dial/Conference").text
    db.expire_all()
    assert db.scalar(select(PeerRequest).where(PeerRequest.call_sid == later.call_sid)).status == "waiting"
    back.post(back.twiml.find("Dial").get("action"), DialCallStatus="completed")  # they talked, in the room
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "completed"
    assert urlsplit(peer_form["Url"][0]).path.startswith("/callbacks/attempt/")


# What answered the caller's phone (Twilio's AnsweredBy): callbacks.answer_kind says why -------


def caller_phone_answers(svc, db, client, net, number: str, answered_by: str, allow_message: bool = True):  # type: ignore[no-untyped-def]
    """A callback's peer presses 1; the caller's phone answers with ``answered_by``. Returns (callback, peer, phone, form)."""
    add_peer(svc, db)
    now = utcnow()
    cb = make_callback(svc, db, number, now - timedelta(minutes=3), now, allow_message=allow_message)
    line.dispatch(db, svc, now)
    peer = peer_picks_up(client, net, creates(net)[0])
    peer.press("1")
    form = creates(net, number)[0]
    phone = TestCaller(client, number=LINE, call_sid=sid_of(net, form))
    phone.post(form["Url"][0], CallStatus="in-progress", AnsweredBy=answered_by)
    return cb, peer, phone, form


def test_an_unknown_answer_hears_a_neutral_line_and_a_key_connects_them(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    cb, peer, phone, _ = caller_phone_answers(svc, db, client, net, "+15555550431", "unknown")
    # Nothing about the line: a machine that records this learns nothing; a quiet person is not dropped.
    assert phone.said == "Hello. To take this call, press 1. Hello. To take this call, press 1."
    assert phone.twiml.find("Dial") is None
    attempt = db.scalar(select(CallbackAttempt))
    assert (attempt.stage, attempt.answered_by) == ("caller_ringing", "unknown")
    phone.press("1")
    assert phone.said == "Hello. This is the call back you asked for. Connecting you now."
    phone.follow()
    assert phone.twiml.find("Dial/Conference").text == peer.twiml.find("Dial/Conference").text
    db.expire_all()
    assert db.scalar(select(CallbackAttempt)).stage == "connected"
    # Completed once they were in the room (their Dial into it ended), not at the greeting.
    assert db.get(CallbackRequest, cb.id).status == "dialing"
    phone.post(phone.twiml.find("Dial").get("action"), DialCallStatus="completed")
    db.expire_all()
    assert db.get(CallbackRequest, cb.id).status == "completed"


@pytest.mark.parametrize("allow_message", [True, False])
def test_an_unknown_answer_that_presses_nothing_is_treated_as_a_machine(svc, db, client, net,  # type: ignore[no-untyped-def]
                                                                      allow_message: bool) -> None:
    cb, peer, phone, _ = caller_phone_answers(svc, db, client, net, "+15555550432", "unknown", allow_message)
    phone.silence()
    assert phone.said == ("This is a return call you asked for. We will try again later." if allow_message else "")
    assert phone.twiml.find("Hangup") is not None
    db.expire_all()
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts, again.outcome) == ("pending", 1, "no_key")
    redirects = [r.form for r in net.state.requests if r.path.endswith(f"/Calls/{peer.call_sid}.json")]
    assert redirects[-1]["Url"][0].endswith("/peer/notice")  # the waiting peer is told


def test_a_fax_hears_nothing_and_the_attempt_counts(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    cb, peer, phone, _ = caller_phone_answers(svc, db, client, net, "+15555550433", "fax")
    assert phone.said == "" and [verb.tag for verb in phone.twiml] == ["Hangup"]
    db.expire_all()
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts, again.outcome) == ("pending", 1, "fax")
    assert db.scalar(select(CallbackAttempt)).answered_by == "fax"


@pytest.mark.parametrize(("mode", "heard", "outcome"), [
    ("unknown-silent", ['"Hello. To take this call, press 1."'] * 2
     + ['"This is a return call you asked for. We will try again later."'], "no_key"),
    ("fax", [], "fax"),
    ("voicemail", ['"This is a return call you asked for. We will try again later."'], "machine"),
])
def test_what_the_network_detects_on_the_callers_phone(svc, db, net, live_app, mode: str, heard: list[str],  # type: ignore[no-untyped-def]
                                                       outcome: str) -> None:
    net.state.rewrite[PUBLIC_BASE] = live_app
    net.state.peer_answers = "accept"
    net.state.answers["+15555550434"] = mode
    add_peer(svc, db)
    now = utcnow()
    cb = make_callback(svc, db, "+15555550434", now - timedelta(minutes=3), now, allow_message=True)
    line.dispatch(db, svc, now)
    net.state.wait_for_legs()

    form = creates(net, "+15555550434")[0]
    assert form["MachineDetection"] == ["DetectMessageEnd"]  # a message is allowed: wait for the beep
    said = [e.removeprefix("+15555550434 hears ") for e in net.state.events if e.startswith("+15555550434 hears")]
    assert said == heard
    db.expire_all()
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts, again.outcome) == ("pending", 1, outcome)
    assert db.scalar(select(Peer)).status == "available"  # told, and free again
    assert f'{PEER_PHONE} hears "They did not answer. We will try again later. Thank you."' in net.state.events


def _callback_at_greeting(svc, db, client, net, number: str):  # type: ignore[no-untyped-def]
    """Two free peers; a callback whose first peer accepted and whose caller just heard the greeting."""
    add_peer(svc, db, "+15555550321")
    add_peer(svc, db, "+15555550322")
    cb = make_callback(svc, db, number, utcnow() - timedelta(minutes=5), utcnow())
    line.dispatch(db, svc, utcnow())
    (peer_form,) = creates(net)
    peer = peer_picks_up(client, net, peer_form)
    peer.press("1")
    caller_form = creates(net, number)[0]
    person = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    person.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="human")
    assert person.said == "Hello. This is the call back you asked for. Connecting you now."
    return cb, peer, peer_form, person


PEER_HAD_TO_LEAVE = ("We are sorry. The peer who called you had to leave the call. We will call you back soon, "
                     "and you keep your place in line. Take care. If you ever feel unsafe, call or text 9 8 8, any time.")


def test_a_peer_who_leaves_during_the_callers_greeting_the_caller_is_told_and_called_back_without_losing_a_try(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    cb, peer, peer_form, person = _callback_at_greeting(svc, db, client, net, "+15555550421")
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="20")  # the peer hangs up
    person.follow()  # the greeting ends: no room to join, the caller is told, never left alone
    assert person.said == PEER_HAD_TO_LEAVE and person.twiml.find("Dial") is None
    assert person.twiml.find("Hangup") is not None
    db.expire_all()
    again = db.get(CallbackRequest, cb.id)
    assert (again.status, again.attempts) == ("pending", 0)  # same place in line, no try used up
    assert db.scalar(select(CallbackAttempt)).outcome == "peer_left"
    # Offered again at once, to the other free peer (the one who left is not rung again straight away).
    line.dispatch(db, svc, utcnow())
    other = "+15555550322" if peer_form["To"] == ["+15555550321"] else "+15555550321"
    assert [f["To"] for f in creates(net) if f["To"] != ["+15555550421"]] == [peer_form["To"], [other]]


def test_a_caller_who_got_into_the_room_after_the_peer_left_is_moved_out_and_told(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    cb, peer, peer_form, person = _callback_at_greeting(svc, db, client, net, "+15555550422")
    person.follow()
    room = person.twiml.find("Dial/Conference").text
    # The caller is in the room on the network when the peer's hang-up is reported: alone there.
    httpx.post(f"{net.base_url}/_sim/calls/{person.call_sid}/join", json={"conference": room, "end_on_exit": True})
    mark = len(net.state.requests)
    peer.post(peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="20")
    moves = [r.form for r in net.state.requests[mark:] if r.method == "POST" and r.path.endswith(f"/Calls/{person.call_sid}.json")]
    assert moves == [{"Url": [f"{PUBLIC_BASE}/callbacks/attempt/{db.scalar(select(CallbackAttempt.id))}/caller/join"],
                      "Method": ["POST"]}]
    person.post(moves[0]["Url"][0])
    assert person.said == PEER_HAD_TO_LEAVE
    db.expire_all()
    assert (db.get(CallbackRequest, cb.id).status, db.get(CallbackRequest, cb.id).attempts) == ("pending", 0)
