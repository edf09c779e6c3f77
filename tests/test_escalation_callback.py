"""A peer is never alone on a callback either: the peer's * menu, the warm hand-off and the supervisor in a
callback's room (``callback-<attempt id>``), through the public webhooks with the phone network standing in
for Twilio's REST API, and a scripted peer on the network from end to end."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from callflows import escalation, line, rooms
from callflows.metrics import Period, count_handoffs
from models import AuditEntry, CallbackRequest, Handoff, MonitorSession, Peer, PeerStatusChange, utcnow
from models.tables import CallbackAttempt, PeerRequest
from simulator.cli import call_command
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN, TestCaller
from tests.test_callbacks import PEER_PHONE, add_peer, creates, make_callback, peer_picks_up, sid_of
from tests.test_escalation import LINE, MENU, SUPERVISOR, announced, enter, in_room, leave, rest, say_of

CALLER = "+15555550461"
GOODBYE = "Your call with the peer has ended. Take care. If you ever feel unsafe, call or text 9 8 8, any time."


@pytest.fixture(autouse=True)
def net(request, app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built; a supervisor number is set."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    app_config["supervisor_number"] = SUPERVISOR
    return phone_network


def talking(client, net, db, svc) -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """A called-back caller and the peer who called them, talking in the callback's room."""
    add_peer(svc, db)
    now = utcnow()
    cb = make_callback(svc, db, CALLER, now - timedelta(minutes=5), now)
    line.dispatch(db, svc, now)
    (peer_form,) = creates(net)
    peer = peer_picks_up(client, net, peer_form)
    peer.press("1")
    dial = peer.twiml.find("Dial")
    room = dial.find("Conference").text
    caller_form = creates(net, CALLER)[0]
    person = TestCaller(client, number=LINE, call_sid=sid_of(net, caller_form))
    person.post(caller_form["Url"][0], CallStatus="in-progress", AnsweredBy="human")
    person.follow()  # the greeting is over: into the room, with the peer
    assert person.twiml.find("Dial/Conference").text == room
    enter(net, peer.call_sid, room, dial.find("Conference").get("endConferenceOnExit") == "true")
    enter(net, person.call_sid, room, person.twiml.find("Dial/Conference").get("endConferenceOnExit") == "true")
    attempt = db.scalar(select(CallbackAttempt))
    return SimpleNamespace(cb=cb, peer=peer, peer_form=peer_form, person=person, caller_form=caller_form, room=room,
                           attempt=attempt, conference=net.state.conference_sids[room],
                           base=f"{PUBLIC_BASE}/callbacks/attempt/{attempt.id}")


def star(net, call: SimpleNamespace) -> Any:  # type: ignore[no-untyped-def]
    """The peer presses *: out of the room, and Twilio requests their Dial's action (the call goes on)."""
    leave(net, call.peer.call_sid)
    return call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed",
                          CallStatus="in-progress")


def callback_of(db, call: SimpleNamespace) -> CallbackRequest:  # type: ignore[no-untyped-def]
    db.expire_all()
    return db.get(CallbackRequest, call.cb.id)


def wrap_ups(db) -> int:  # type: ignore[no-untyped-def]
    """How many times the peer went into wrap-up."""
    return len(db.scalars(select(PeerStatusChange).where(PeerStatusChange.status == "wrap_up")).all())


def test_star_on_a_callback_opens_the_peers_menu_while_the_caller_stays_and_is_reassured(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    assert call.room == f"callback-{call.attempt.id}"
    # The peer's leg steps out on *, and their leaving never ends the room; the caller's still does.
    assert call.peer.twiml.find("Dial").get("hangupOnStar") == "true"
    assert call.peer.twiml.find("Dial/Conference").get("endConferenceOnExit") == "false"
    assert call.person.twiml.find("Dial/Conference").get("endConferenceOnExit") == "true"
    mark = len(net.state.requests)
    star(net, call)
    assert call.peer.said == MENU
    assert in_room(net, call.person.call_sid) == call.room  # the caller was never dropped
    notice = f"{call.base}/caller/notice?lang=en"
    assert rest(net, mark) == [(f"/Conferences/{call.conference}/Participants/{call.person.call_sid}.json",
                                {"AnnounceUrl": [notice], "AnnounceMethod": ["POST"]})]
    assert say_of(client, notice) == "Your peer is still with you. Please stay on the line."
    call.peer.press("3")
    assert call.peer.said == "Back to the caller."
    dial = call.peer.twiml.find("Dial")
    assert dial.get("hangupOnStar") == "true" and dial.find("Conference").text == call.room
    assert dial.get("action") == f"{call.base}/peer/after"
    assert db.scalar(select(Handoff)) is None
    assert callback_of(db, call).status == "dialing"  # still in conversation


def test_warm_hand_off_on_a_callback_answered_the_peer_leaves_and_the_caller_stays_with_the_counselor(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("1")
    assert call.peer.said == ("Calling the crisis line into the call. Please stay with the caller until the "
                              "counselor answers.")
    assert call.peer.twiml.find("Dial/Conference").text == call.room
    handoff = db.scalar(select(Handoff))
    assert (handoff.kind, handoff.status, handoff.request_id, handoff.callback_attempt_id, handoff.peer_id) == (
        "crisis", "ringing", None, call.attempt.id, call.attempt.peer_id)
    (path, form), = rest(net, mark)
    assert path == f"/Conferences/{call.room}/Participants.json"
    assert form == {"From": [LINE], "To": ["988"], "StatusCallback": [f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status"],
                    "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"], "Timeout": ["45"],
                    "Muted": ["false"], "Beep": ["false"], "EarlyMedia": ["false"], "EndConferenceOnExit": ["false"],
                    "StartConferenceOnEnter": ["true"]}
    counselor = TestCaller(client, number=LINE, call_sid=handoff.call_sid)
    enter(net, call.peer.call_sid, call.room, False)
    enter(net, handoff.call_sid, call.room, False)
    mark = len(net.state.requests)
    counselor.post(form["StatusCallback"][0], CallStatus="in-progress")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "answered" and db.get(Handoff, handoff.id).answered_at is not None
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert notice == f"{call.base}/peer/in-call/notice?what=crisis_answered"
    assert say_of(client, notice) == ("The crisis counselor is on the line. You may stay, or hang up when you "
                                      "are ready.")
    # The peer hangs up in the room: wrap-up; the caller stays with the counselor, nobody is moved or hung up.
    leave(net, call.peer.call_sid)
    mark = len(net.state.requests)
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    call.peer.post(call.peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="300")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up" and wrap_ups(db) == 1
    assert not [p for p, _f in rest(net, mark) if p.startswith("/Calls/")]
    assert in_room(net, call.person.call_sid) == call.room and in_room(net, handoff.call_sid) == call.room
    # The caller talked with their peer: the callback is done, never tried again or missed.
    cb = callback_of(db, call)
    assert (cb.status, cb.outcome, cb.attempts) == ("completed", "connected", 1)
    assert db.get(CallbackAttempt, call.attempt.id).outcome == "connected"
    # The counselor hangs up later: the caller, alone now, is moved to their goodbye.
    leave(net, handoff.call_sid)
    mark = len(net.state.requests)
    counselor.post(form["StatusCallback"][0], CallStatus="completed", CallDuration="900")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "ended" and db.get(Handoff, handoff.id).ended_at is not None
    assert rest(net, mark) == [(f"/Calls/{call.person.call_sid}.json",
                                {"Url": [f"{call.base}/caller/after"], "Method": ["POST"]})]
    call.person.post(f"{call.base}/caller/after")
    assert call.person.said == GOODBYE and call.person.twiml.find("Hangup") is not None
    call.person.post(call.caller_form["StatusCallback"][0], CallStatus="completed")
    cb = callback_of(db, call)
    assert (cb.status, cb.outcome, cb.attempts) == ("completed", "connected", 1)
    assert wrap_ups(db) == 1
    # Reports count the callback's hand-off with the live calls' ones.
    now = utcnow()
    assert count_handoffs(db, Period(now - timedelta(hours=1), now + timedelta(minutes=1))) == (1, 1)


def test_warm_hand_off_on_a_callback_unanswered_the_peer_is_told_and_the_call_goes_on(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    star(net, call)
    call.peer.press("1")
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    mark = len(net.state.requests)
    TestCaller(client, number=LINE, call_sid=handoff.call_sid).post(
        f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", CallStatus="no-answer")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "no_answer"
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert say_of(client, notice) == "The crisis line did not answer. You are still with the caller."
    assert in_room(net, call.person.call_sid) == call.room
    assert callback_of(db, call).status == "dialing" and db.get(CallbackAttempt, call.attempt.id).stage == "connected"
    # Another try is a new hand-off.
    star(net, call)
    call.peer.press("1")
    assert [h.status for h in db.scalars(select(Handoff).order_by(Handoff.id))] == ["no_answer", "ringing"]


def test_a_counselor_answering_while_the_callback_peer_is_in_the_menu_is_said_as_they_go_back(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    star(net, call)
    call.peer.press("1")  # the peer hears "Calling the crisis line..." and is not back in the room yet
    handoff = db.scalar(select(Handoff))
    mark = len(net.state.requests)
    TestCaller(client, number=LINE, call_sid=handoff.call_sid).post(
        f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", CallStatus="in-progress")
    rejoin = f"{call.base}/peer/rejoin?what=crisis_answered"
    assert rest(net, mark)[-1] == (f"/Calls/{call.peer.call_sid}.json", {"Url": [rejoin], "Method": ["POST"]})
    call.peer.post(rejoin)
    assert call.peer.said == "The crisis counselor is on the line. You may stay, or hang up when you are ready."
    assert call.peer.twiml.find("Dial/Conference").text == call.room
    assert call.peer.twiml.find("Dial").get("hangupOnStar") == "true"


def test_supervisor_answers_on_a_callback_coaches_the_peer_then_leaves(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = talking(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    assert call.peer.said == "Ringing the supervisor. You will hear when they join."
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    assert (handoff.kind, handoff.callback_attempt_id, handoff.request_id) == ("supervisor", call.attempt.id, None)
    (path, form), = rest(net, mark)
    assert path == "/Calls.json" and form["To"] == [SUPERVISOR] and form["From"] == [LINE]
    supervisor = peer_picks_up(client, net, form)
    whisper = "A peer is asking for help. Press 1 to join."
    assert [" ".join(s.itertext()) for s in supervisor.twiml.findall("Gather/Say")] == [whisper, whisper]
    mark = len(net.state.requests)
    supervisor.press("1")
    conference = supervisor.twiml.find("Dial/Conference")
    assert conference.text == call.room and conference.get("coach") == call.peer.call_sid
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert say_of(client, notice) == "A supervisor has joined. Only you can hear them."
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "joined"
    # * then 1 speaks to both; * then 3 leaves: the caller and the peer go on.
    supervisor.post(supervisor.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    supervisor.press("1")
    assert supervisor.twiml.find("Dial/Conference").get("coach") is None
    supervisor.post(supervisor.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    supervisor.press("3")
    assert supervisor.twiml.find("Hangup") is not None
    supervisor.post(form["StatusCallback"][0], CallStatus="completed", CallDuration="120")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "ended"
    assert callback_of(db, call).status == "dialing" and in_room(net, call.person.call_sid) == call.room


def test_supervisor_does_not_answer_on_a_callback_the_peer_is_told_and_offered_the_crisis_line(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    star(net, call)
    call.peer.press("2")
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    mark = len(net.state.requests)
    TestCaller(client, number=LINE, call_sid=handoff.call_sid).post(
        f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", CallStatus="no-answer")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "no_answer"
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert say_of(client, notice) == "No supervisor answered. To add the crisis line, press star, then 1."
    assert callback_of(db, call).status == "dialing"


def test_callback_peer_hangs_up_in_the_menu_while_the_supervisor_rings_no_leg_left_and_the_caller_hears_goodbye(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    star(net, call)
    call.peer.press("2")
    handoff = db.scalar(select(Handoff))
    mark = len(net.state.requests)
    call.peer.post(call.peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="200")  # in the menu
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "canceled"
    assert rest(net, mark) == [
        (f"/Calls/{handoff.call_sid}.json", {"Status": ["canceled"]}),
        (f"/Calls/{call.person.call_sid}.json", {"Url": [f"{call.base}/caller/after"], "Method": ["POST"]}),
    ]
    assert net.state.calls[handoff.call_sid]["status"] == "canceled"
    assert db.scalar(select(Peer)).status == "wrap_up"
    call.person.post(f"{call.base}/caller/after")
    assert call.person.said == GOODBYE
    call.person.post(call.caller_form["StatusCallback"][0], CallStatus="completed")
    cb = callback_of(db, call)
    assert (cb.status, cb.outcome, cb.attempts) == ("completed", "connected", 1)  # talked: never tried again
    assert wrap_ups(db) == 1


def test_callback_peer_hangs_up_in_the_conversation_the_caller_hears_goodbye_and_is_not_called_again(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    leave(net, call.peer.call_sid)
    assert in_room(net, call.person.call_sid) == call.room  # the peer's leaving does not end the room
    mark = len(net.state.requests)
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    assert rest(net, mark) == [(f"/Calls/{call.person.call_sid}.json",
                                {"Url": [f"{call.base}/caller/after"], "Method": ["POST"]})]
    call.peer.post(call.peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="200")
    call.person.post(f"{call.base}/caller/after")
    assert call.person.said == GOODBYE
    call.person.post(call.caller_form["StatusCallback"][0], CallStatus="completed")
    cb = callback_of(db, call)
    assert (cb.status, cb.outcome, cb.attempts) == ("completed", "connected", 1)
    assert db.scalar(select(Peer)).status == "wrap_up" and wrap_ups(db) == 1


def test_called_back_caller_hangs_up_while_the_crisis_line_rings_no_leg_left_no_peer_busy(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = talking(client, net, db, svc)
    star(net, call)
    call.peer.press("1")
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    # The caller hangs up: their leg ends the room, their Dial's action follows.
    leave(net, call.person.call_sid)
    assert in_room(net, call.peer.call_sid) is None
    mark = len(net.state.requests)
    call.person.post(call.person.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "canceled"
    assert rest(net, mark) == [(f"/Calls/{handoff.call_sid}.json", {"Status": ["canceled"]})]
    # The peer's Dial ends with the room: the call is over for them, as after any callback (this one was not
    # asked for on a call the line kept, so there is no call record to key).
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    assert call.peer.said == "Thank you. Goodbye." and call.peer.twiml.find("Hangup") is not None
    call.person.post(call.caller_form["StatusCallback"][0], CallStatus="completed")
    call.peer.post(call.peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="200")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up" and wrap_ups(db) == 1
    cb = callback_of(db, call)
    assert (cb.status, cb.outcome) == ("completed", "connected")


def test_called_back_caller_hangs_up_while_the_peer_is_in_the_menu(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = talking(client, net, db, svc)
    star(net, call)
    leave(net, call.person.call_sid)
    call.person.post(call.person.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    mark = len(net.state.requests)
    call.peer.press("2")
    assert call.peer.said == "The caller has hung up. Thank you." and call.peer.twiml.find("Hangup") is not None
    assert rest(net, mark) == [] and db.scalar(select(Handoff)) is None
    call.person.post(call.caller_form["StatusCallback"][0], CallStatus="completed")
    call.peer.post(call.peer_form["StatusCallback"][0], CallStatus="completed", CallDuration="200")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up" and wrap_ups(db) == 1
    assert callback_of(db, call).status == "completed"


def test_star_while_the_called_back_caller_is_still_ringing_puts_the_peer_back_to_wait(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    add_peer(svc, db)
    now = utcnow()
    make_callback(svc, db, CALLER, now - timedelta(minutes=5), now)
    line.dispatch(db, svc, now)
    peer = peer_picks_up(client, net, creates(net)[0])
    peer.press("1")
    room = peer.twiml.find("Dial/Conference").text
    mark = len(net.state.requests)
    peer.post(peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    # No menu without a caller to step away from: back into the room to wait for them, nothing else done.
    assert peer.said == "Calling them now. Please stay on the line."
    assert peer.twiml.find("Dial/Conference").text == room and peer.twiml.find("Dial").get("hangupOnStar") == "true"
    assert rest(net, mark) == []
    assert db.scalar(select(CallbackAttempt)).stage == "caller_ringing"


def test_peerline_call_with_a_scripted_peer_adds_the_crisis_line_on_a_callback(live_app: str, svc, db, net) -> None:  # type: ignore[no-untyped-def]
    """`peerline call --script 1,3,1,1,1 --peer-answers accept --peer-keys "*,1"`: the caller asks to be called
    back; the peer the line rings for it steps out, adds the crisis line, and goes back; nobody is left on."""
    add_peer(svc, db)
    net.state.rewrite = {PUBLIC_BASE: live_app}  # the network's legs reach the app where it listens
    net.state.ring_s = 0.1
    caller = "+15555550182"
    result = CliRunner().invoke(call_command, [
        "--script", "1,3,1,1,1", "--talk-seconds", "6", "--peer-answers", "accept", "--peer-keys", "*,1",
        "--url", live_app, "--public-url", PUBLIC_BASE, "--token", TEST_AUTH_TOKEN, "--network", net.base_url,
        "--from", caller])
    assert result.exit_code == 0, result.output
    line.dispatch(db, svc, utcnow())  # what the callback's due job does
    net.state.wait_for_legs()
    attempt = db.scalar(select(CallbackAttempt))
    events = net.state.events
    steps = [f"{PEER_PHONE} presses 1",
             f"ringing {caller}",
             f"{caller} answers",
             f"{PEER_PHONE} presses *",
             f'{PEER_PHONE} hears "The caller cannot hear you',
             f"the line adds 988 to conference callback-{attempt.id}",
             f'{PEER_PHONE} hears "Calling the crisis line into the call.',
             "988 answers",
             f'{PEER_PHONE} hears "The crisis counselor is on the line.',
             f"{caller} hangs up"]
    positions = [next((i for i, e in enumerate(events) if e.startswith(step)), -1) for step in steps]
    assert -1 not in positions and positions == sorted(positions), "\n".join(events)
    heard = [i for i, e in enumerate(events) if e == f'{caller} hears "Your peer is still with you. Please stay on the line."']
    assert heard and heard[0] > positions[3]  # the called-back caller was reassured, never left in silence
    db.expire_all()
    handoff = db.scalar(select(Handoff))
    assert (handoff.kind, handoff.status, handoff.callback_attempt_id) == ("crisis", "ended", attempt.id)
    assert handoff.answered_at is not None
    assert db.scalar(select(Peer)).status == "wrap_up"  # the peer is not left busy
    cb = db.scalar(select(CallbackRequest))
    assert (cb.status, cb.outcome) == ("completed", "connected")
    assert all(c["status"] in ("completed", "canceled") for c in net.state.calls.values())  # no leg left
    assert net.state.conferences == {}


def make_peer_request(db) -> PeerRequest:  # type: ignore[no-untyped-def]
    req = PeerRequest(call_sid="CA" + "0" * 32, language="en", status="waiting", arrived_at=utcnow())
    db.add(req)
    db.commit()
    return req


def test_a_hand_off_belongs_to_exactly_one_room(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    """The database holds it (migration 0005c): a live request's or a callback attempt's, never neither or both."""
    call = talking(client, net, db, svc)
    live = make_peer_request(db)
    for owner in ({"request_id": None, "callback_attempt_id": None},
                  {"request_id": live.id, "callback_attempt_id": call.attempt.id}):
        db.add(Handoff(**owner, kind="crisis", status="ringing", created_at=utcnow()))
        with pytest.raises(IntegrityError):
            db.commit()
        db.rollback()
    db.add(Handoff(callback_attempt_id=call.attempt.id, kind="crisis", status="ringing", created_at=utcnow()))
    db.commit()


def test_a_listener_on_a_callbacks_room_joins_muted_and_the_peer_is_told(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    """The rules hold for a callback's room (the board test below starts one from the staff page)."""
    call = talking(client, net, db, svc)
    mark = len(net.state.requests)
    monitor = escalation.start_monitor(db, svc, rooms.of_attempt(db, call.attempt), "listen", "+15555550998",
                                       utcnow())
    assert (monitor.callback_attempt_id, monitor.request_id, monitor.peer_id) == (
        call.attempt.id, None, call.attempt.peer_id)
    (path, form), = rest(net, mark)
    assert path == f"/Conferences/{call.room}/Participants.json"
    assert form["To"] == ["+15555550998"] and form["Muted"] == ["true"] and form["EndConferenceOnExit"] == ["false"]
    audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "monitor_listen"))
    assert (audit.target_type, audit.target_id) == ("callback_attempt", call.attempt.id)
    mark = len(net.state.requests)
    TestCaller(client, number=LINE, call_sid=monitor.call_sid).post(
        f"{PUBLIC_BASE}/peer/monitor/{monitor.id}/status", CallStatus="in-progress")
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert say_of(client, notice) == "A supervisor is listening."
    # The called-back caller hangs up: the room ends, the listener's leg ends, the session is closed.
    TestCaller(client, number=LINE, call_sid=monitor.call_sid).post(
        f"{PUBLIC_BASE}/peer/monitor/{monitor.id}/status", CallStatus="completed")
    db.expire_all()
    assert db.get(MonitorSession, monitor.id).status == "ended"
    assert escalation.monitored(db, call.attempt.peer_id)[0].id == monitor.id  # on the peer's own page


def test_a_listen_on_a_callback_call_started_from_the_board_is_muted_and_audit_logged(  # type: ignore[no-untyped-def]
        svc, db, client, net, dashboard_data) -> None:
    """The board offers Listen / Coach / Join on a callback call too, beside the callback it belongs to."""
    from tests.test_dashboard import post, sign_in

    call = talking(client, net, db, svc)
    peer_name = db.get(Peer, call.attempt.peer_id).display_name
    assert sign_in(client, "sam", dashboard_data.passwords["sam"]).status_code == 302
    path = f"/staff/board/callbacks/{call.attempt.id}/monitor"
    assert post(client, path, mode="listen", phone="+15555550777").status_code == 403  # a peer cannot listen
    client.post("/staff/sign-out", data={})
    client.delete_cookie("session")
    assert sign_in(client, "super", dashboard_data.passwords["super"]).status_code == 302
    board = client.get("/staff/board").get_data(as_text=True)
    card = board[board.index(f"Callback {call.cb.id}"):]
    assert f"Called back by {peer_name}" in card and f"(callback {call.cb.id})" in card and ">Listen<" in card
    mark = len(net.state.requests)
    assert post(client, path, mode="listen", phone="+15555550777").status_code == 302
    monitor = db.scalar(select(MonitorSession))
    (rest_path, form), = rest(net, mark)
    assert rest_path == f"/Conferences/{call.room}/Participants.json"
    assert form["To"] == ["+15555550777"] and form["Muted"] == ["true"] and form["EndConferenceOnExit"] == ["false"]
    assert (monitor.callback_attempt_id, monitor.request_id, monitor.mode) == (call.attempt.id, None, "listen")
    audit = db.scalar(select(AuditEntry).where(AuditEntry.action == "monitor_listen"))
    assert (audit.staff_user_id, audit.target_type, audit.target_id) == (
        dashboard_data.users["super"].id, "callback_attempt", call.attempt.id)
    assert "Listen · ringing" in client.get("/staff/board").get_data(as_text=True)
