"""A peer is never alone: the in-call menu, the warm hand-off, the supervisor, through the public webhooks
with the phone network standing in for Twilio's REST API (Calls, Conferences, Participants)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from models import Handoff, Peer
from simulator.cli import call_command
from models.tables import PeerRequest
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller
from tests.test_routing import ask_for_peer, creates, pick_up

LINE = "+15005550006"
ACCOUNT = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}"
SUPERVISOR = "+15555550999"
MENU = ("The caller cannot hear you, and hears that you are still with them. To add the crisis line, press 1. "
        "To ask the supervisor to join, press 2. To go back to the caller, press 3.")


@pytest.fixture(autouse=True)
def net(request, app_config, phone_network):  # type: ignore[no-untyped-def]
    """The phone network, wired in before the app is built; a supervisor number is set (but where a test says none)."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    app_config["supervisor_number"] = "" if "no_supervisor_number" in request.node.name else SUPERVISOR
    return phone_network


def enter(net, sid: str, room: str, end_on_exit: bool) -> None:  # type: ignore[no-untyped-def]
    """A leg joins the room on the network (what Twilio does when it runs the <Conference>)."""
    httpx.post(f"{net.base_url}/_sim/calls/{sid}/join", json={"conference": room, "end_on_exit": end_on_exit})


def leave(net, sid: str) -> None:  # type: ignore[no-untyped-def]
    """A leg leaves its room on the network (hung up, or pressed * under hangupOnStar)."""
    httpx.post(f"{net.base_url}/_sim/calls/{sid}/leave", json={})


def in_room(net, sid: str) -> str | None:  # type: ignore[no-untyped-def]
    return net.state.calls[sid].get("conference")


def rest(net, since: int = 0) -> list[tuple[str, dict[str, list[str]]]]:  # type: ignore[no-untyped-def]
    """The POSTs the line made to the REST API from request ``since`` on, as (path after the account, form)."""
    return [(r.path.removeprefix(ACCOUNT), r.form) for r in net.state.requests[since:] if r.method == "POST"]


def connected(client, net, db, svc, peer_phone: str | None = "+15555550131") -> SimpleNamespace:  # type: ignore[no-untyped-def]
    """A caller and a peer talking in their room (a new peer, or with None the one already available)."""
    if peer_phone:
        make_peer(db, svc.vault, display_name="sam", phone=peer_phone)
    caller = ask_for_peer(client, net, "+15555550196")
    form = creates(net)[0]
    peer = pick_up(client, net, form)
    peer.press("1")
    req = db.scalar(select(PeerRequest))
    caller.post(f"{PUBLIC_BASE}/peer/caller/{req.id}/connect?lang=en")
    room = f"call-{req.id}"
    enter(net, caller.call_sid, room, caller.twiml.find("Dial/Conference").get("endConferenceOnExit") == "true")
    enter(net, peer.call_sid, room, peer.twiml.find("Dial/Conference").get("endConferenceOnExit") == "true")
    return SimpleNamespace(caller=caller, peer=peer, req=req, room=room, status_url=form["StatusCallback"][0],
                           conference=net.state.conference_sids[room])


def star(net, call: SimpleNamespace) -> Any:  # type: ignore[no-untyped-def]
    """The peer presses *: they leave the room, and Twilio requests their Dial's action (the call goes on)."""
    leave(net, call.peer.call_sid)
    return call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed",
                          CallStatus="in-progress")


def announced(net, since: int, call_sid: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The announcement URLs played to one participant since request ``since``."""
    return [form["AnnounceUrl"][0] for path, form in rest(net, since)
            if path.endswith(f"/Participants/{call_sid}.json") and "AnnounceUrl" in form]


def say_of(client, url: str) -> str:  # type: ignore[no-untyped-def]
    """What an announcement says."""
    listener = TestCaller(client)
    listener.post(url)
    return listener.said


def test_star_takes_the_peer_to_a_private_menu_while_the_caller_stays_and_is_reassured(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = connected(client, net, db, svc)
    assert call.peer.twiml.find("Dial").get("hangupOnStar") == "true"
    mark = len(net.state.requests)
    star(net, call)
    assert call.peer.said == MENU
    assert in_room(net, call.caller.call_sid) == call.room  # the caller was never dropped
    notice = f"{PUBLIC_BASE}/peer/caller/{call.req.id}/notice?lang=en"
    assert rest(net, mark) == [(f"/Conferences/{call.conference}/Participants/{call.caller.call_sid}.json",
                                {"AnnounceUrl": [notice], "AnnounceMethod": ["POST"]})]
    assert say_of(client, notice) == "Your peer is still with you. Please stay on the line."
    call.peer.press("3")
    assert call.peer.said == "Back to the caller."
    dial = call.peer.twiml.find("Dial")
    assert dial.get("hangupOnStar") == "true" and dial.find("Conference").text == call.room
    assert dial.find("Conference").get("endConferenceOnExit") == "false"
    assert db.scalar(select(Handoff)) is None


def test_warm_hand_off_answered_the_peer_may_leave_and_the_caller_stays_with_the_counselor(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = connected(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("1")
    assert call.peer.said == ("Calling the crisis line into the call. Please stay with the caller until the "
                              "counselor answers.")
    assert call.peer.twiml.find("Dial/Conference").text == call.room
    handoff = db.scalar(select(Handoff))
    assert (handoff.kind, handoff.status) == ("crisis", "ringing")
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
    assert say_of(client, notice) == ("The crisis counselor is on the line. You may stay, or hang up when you "
                                      "are ready.")
    # The peer hangs up: they go to wrap-up, and the caller stays with the counselor.
    leave(net, call.peer.call_sid)
    mark = len(net.state.requests)
    call.peer.post(call.status_url, CallStatus="completed", CallDuration="300")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up"
    assert not [p for p, f in rest(net, mark) if p.startswith("/Calls/")]  # nobody was moved or hung up
    assert in_room(net, call.caller.call_sid) == call.room
    # The counselor hangs up later: the caller, alone now, hears the goodbye.
    leave(net, handoff.call_sid)
    counselor.post(form["StatusCallback"][0], CallStatus="completed", CallDuration="900")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "ended" and db.get(Handoff, handoff.id).ended_at is not None
    assert rest(net, mark)[-1] == (f"/Calls/{call.caller.call_sid}.json",
                                   {"Url": [f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done"], "Method": ["POST"]})


def test_warm_hand_off_unanswered_the_peer_is_told_and_the_call_goes_on(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
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
    assert db.get(PeerRequest, call.req.id).status == "connected"
    assert in_room(net, call.caller.call_sid) == call.room
    # The peer may try again at once: a new hand-off, not the old one.
    star(net, call)
    call.peer.press("1")
    assert [h.status for h in db.scalars(select(Handoff).order_by(Handoff.id))] == ["no_answer", "ringing"]


def test_supervisor_answers_coaches_the_peer_then_speaks_to_both_then_leaves(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    assert call.peer.said == "Ringing the supervisor. You will hear when they join."
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    (path, form), = rest(net, mark)
    assert path == "/Calls.json" and form["To"] == [SUPERVISOR] and form["From"] == [LINE]
    assert form["Url"] == [f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/whisper"] and form["Timeout"] == ["25"]
    supervisor = pick_up(client, net, form)
    whisper = "A peer is asking for help. Press 1 to join."
    assert [" ".join(s.itertext()) for s in supervisor.twiml.findall("Gather/Say")] == [whisper, whisper]
    mark = len(net.state.requests)
    supervisor.press("1")
    conference = supervisor.twiml.find("Dial/Conference")
    assert conference.text == call.room and conference.get("coach") == call.peer.call_sid
    assert supervisor.said == "You are joining as a coach. Only the peer hears you. Press star for choices."
    (notice,) = announced(net, mark, call.peer.call_sid)
    assert say_of(client, notice) == "A supervisor has joined. Only you can hear them."
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "joined"
    # * then 1: speak to both (the same room, no longer a coach).
    supervisor.post(supervisor.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    assert supervisor.said == ("To speak to both, press 1. To coach the peer only, press 2. To leave the call, "
                               "press 3.")
    supervisor.press("1")
    assert supervisor.said == "You are speaking to the peer and the caller. Press star for choices."
    conference = supervisor.twiml.find("Dial/Conference")
    assert conference.text == call.room and conference.get("coach") is None
    # * then 3: the supervisor leaves; the caller and the peer go on.
    supervisor.post(supervisor.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    supervisor.press("3")
    assert supervisor.twiml.find("Hangup") is not None
    supervisor.post(form["StatusCallback"][0], CallStatus="completed", CallDuration="120")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "ended"
    assert db.get(PeerRequest, call.req.id).status == "connected"


def test_supervisor_does_not_answer_the_peer_is_told_and_offered_the_crisis_line(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
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


def test_no_supervisor_number_says_so_and_offers_the_crisis_line(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("2")
    assert call.peer.said == "No supervisor can be rung right now. To add the crisis line, press star, then 1."
    assert rest(net, mark) == []
    assert db.scalar(select(Handoff)).status == "failed"


def test_peer_hangs_up_while_the_supervisor_rings_no_leg_left_and_the_caller_hears_goodbye(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = connected(client, net, db, svc)
    star(net, call)
    call.peer.press("2")
    handoff = db.scalar(select(Handoff))
    mark = len(net.state.requests)
    call.peer.post(call.status_url, CallStatus="completed", CallDuration="200")  # hung up in the menu
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "canceled"
    assert rest(net, mark) == [
        (f"/Calls/{handoff.call_sid}.json", {"Status": ["canceled"]}),
        (f"/Calls/{call.caller.call_sid}.json", {"Url": [f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done"],
                                                  "Method": ["POST"]}),
    ]
    assert net.state.calls[handoff.call_sid]["status"] == "canceled"
    assert db.scalar(select(Peer)).status == "wrap_up"
    call.caller.post(f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done")
    assert call.caller.said.startswith("Your call with the peer has ended.")


def test_caller_hangs_up_while_the_crisis_line_rings_no_leg_left_no_peer_busy(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
    star(net, call)
    call.peer.press("1")
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    # The caller hangs up: their leg ends the room (endConferenceOnExit), their Dial's action follows.
    leave(net, call.caller.call_sid)
    assert in_room(net, call.peer.call_sid) is None
    mark = len(net.state.requests)
    call.caller.post(f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done", DialCallStatus="completed",
                     CallStatus="completed")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "canceled"
    assert rest(net, mark) == [(f"/Calls/{handoff.call_sid}.json", {"Status": ["canceled"]})]
    # The peer's Dial ends with the room: they hear the caller left, then key the call record, as after any call.
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    assert call.peer.said == ("The caller has hung up. Thank you. Before you go, key the outcome of the call. "
                              "1, talked it through. 2, referred. 3, crisis hand-off. 4, ended early. 5, other.")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up"
    call.peer.post(call.status_url, CallStatus="completed", CallDuration="200")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up"


def test_caller_hangs_up_while_the_peer_is_in_the_menu(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
    star(net, call)
    leave(net, call.caller.call_sid)
    call.caller.post(f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done", DialCallStatus="completed",
                     CallStatus="completed")
    mark = len(net.state.requests)
    call.peer.press("1")
    assert call.peer.said == "The caller has hung up. Thank you." and call.peer.twiml.find("Hangup") is not None
    assert rest(net, mark) == [] and db.scalar(select(Handoff)) is None
    call.peer.post(call.status_url, CallStatus="completed", CallDuration="200")
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up"


def test_peer_hangs_up_in_the_conversation_ends_the_callers_room(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
    leave(net, call.peer.call_sid)
    mark = len(net.state.requests)
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    assert call.peer.twiml.find("Say") is None  # Twilio ignores this answer: the peer is gone
    call.peer.post(call.status_url, CallStatus="completed", CallDuration="200")
    assert rest(net, mark)[-1] == (f"/Calls/{call.caller.call_sid}.json",
                                   {"Url": [f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done"], "Method": ["POST"]})
    db.expire_all()
    assert db.scalar(select(Peer)).status == "wrap_up"


def test_nine_in_the_peers_menu_adds_the_crisis_line_to_the_callers_room(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    """9, the crisis key everywhere, is a warm hand-off here too: never a dial that takes the peer away from the caller."""
    call = connected(client, net, db, svc)
    star(net, call)
    mark = len(net.state.requests)
    call.peer.press("9")
    assert call.peer.said.startswith("Calling the crisis line into the call.")
    assert call.peer.twiml.find("Dial/Number") is None and call.peer.twiml.find("Dial/Conference").text == call.room
    assert [path for path, _form in rest(net, mark)] == [f"/Conferences/{call.room}/Participants.json"]
    call.peer.post(call.peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    call.peer.press("7")  # a key that means nothing here says the menu again
    assert call.peer.said == MENU


def test_peerline_call_with_a_scripted_peer_shows_a_whole_hand_off(live_app: str, svc, db, net) -> None:  # type: ignore[no-untyped-def]
    """`peerline call --peer-answers accept --peer-keys "*,1"`: the peer steps out, adds the crisis line, goes back."""
    make_peer(db, svc.vault, display_name="sam", phone="+15555550131")
    net.state.rewrite = {PUBLIC_BASE: live_app}  # the network's legs reach the app where it listens
    net.state.ring_s = 0.1
    result = CliRunner().invoke(call_command, [
        "--script", "1,1", "--talk-seconds", "6", "--peer-answers", "accept", "--peer-keys", "*,1",
        "--url", live_app, "--public-url", PUBLIC_BASE, "--token", TEST_AUTH_TOKEN, "--network", net.base_url,
        "--from", "+15555550178"])
    net.state.wait_for_legs()
    assert result.exit_code == 0, result.output
    out = result.output
    steps = ["[network] +15555550131 presses 1",
             "[connected: you are in the conversation]",
             "[network] +15555550131 presses *",
             '[network] +15555550131 hears "The caller cannot hear you',
             f"[network] the line adds 988 to conference call-{db.scalar(select(PeerRequest.id))}",
             '[network] +15555550131 hears "Calling the crisis line into the call.',
             "[network] 988 answers",
             '[network] +15555550131 hears "The crisis counselor is on the line.',
             "[you hang up]"]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), "\n".join(
        f"{p:6d} {s}" for p, s in zip(positions, steps)) + "\n" + out
    # Meanwhile (the caller's own screen, so its place among the peer's lines varies) the caller is reassured.
    assert out.find('"Your peer is still with you. Please stay on the line."') > out.find("presses *")
    db.expire_all()
    handoff = db.scalar(select(Handoff))
    assert (handoff.kind, handoff.status) == ("crisis", "ended") and handoff.answered_at is not None
    assert db.scalar(select(Peer)).status == "wrap_up"  # the peer is not left busy
    assert all(c["status"] in ("completed", "canceled") for c in net.state.calls.values())  # no leg left
    assert net.state.conferences == {}


def test_peer_hangs_up_while_the_supervisor_coaches_nobody_is_left_in_the_room(svc, db, client, net) -> None:  # type: ignore[no-untyped-def]
    call = connected(client, net, db, svc)
    star(net, call)
    call.peer.press("2")
    enter(net, call.peer.call_sid, call.room, False)
    handoff = db.scalar(select(Handoff))
    supervisor = pick_up(client, net, next(f for f in creates(net) if f["To"] == [SUPERVISOR]))
    supervisor.press("1")
    enter(net, handoff.call_sid, call.room, False)
    # The peer hangs up: the caller hears the goodbye (their leg ends the room for the supervisor too).
    leave(net, call.peer.call_sid)
    mark = len(net.state.requests)
    call.peer.post(call.status_url, CallStatus="completed", CallDuration="200")
    assert rest(net, mark)[-1] == (f"/Calls/{call.caller.call_sid}.json",
                                   {"Url": [f"{PUBLIC_BASE}/peer/caller/{call.req.id}/done"], "Method": ["POST"]})
    assert in_room(net, handoff.call_sid) is None  # the caller's move took them, and the room, away
    supervisor.post(supervisor.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="in-progress")
    assert supervisor.said == "This call has ended. Thank you." and supervisor.twiml.find("Hangup") is not None
    supervisor.post(f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", CallStatus="completed", CallDuration="90")
    db.expire_all()
    assert db.get(Handoff, handoff.id).status == "ended"
    assert db.scalar(select(Peer)).status == "wrap_up"


def test_peerline_call_with_a_scripted_peer_asking_the_supervisor(live_app: str, svc, db, net) -> None:  # type: ignore[no-untyped-def]
    """`--peer-keys "*,2"`: the supervisor's phone rings with the whisper, they press 1 and coach the peer."""
    make_peer(db, svc.vault, display_name="sam", phone="+15555550131")
    net.state.rewrite = {PUBLIC_BASE: live_app}
    net.state.ring_s = 0.1
    result = CliRunner().invoke(call_command, [
        "--script", "1,1", "--talk-seconds", "6", "--peer-answers", "accept", "--peer-keys", "*,2",
        "--url", live_app, "--public-url", PUBLIC_BASE, "--token", TEST_AUTH_TOKEN, "--network", net.base_url,
        "--from", "+15555550179"])
    net.state.wait_for_legs()
    assert result.exit_code == 0, result.output
    out = result.output
    steps = ["[network] +15555550131 presses *",
             "[network] +15555550131 presses 2",
             f"[network] ringing {SUPERVISOR}",
             f'[network] {SUPERVISOR} hears "A peer is asking for help. Press 1 to join."',
             f"[network] {SUPERVISOR} presses 1",
             '[network] +15555550131 hears "A supervisor has joined. Only you can hear them."',
             "[you hang up]"]
    positions = [out.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), out
    db.expire_all()
    handoff = db.scalar(select(Handoff))
    assert (handoff.kind, handoff.status) == ("supervisor", "ended")
    assert db.scalar(select(Peer)).status == "wrap_up"
    assert all(c["status"] in ("completed", "canceled") for c in net.state.calls.values())
    assert net.state.conferences == {}


def test_a_counselor_who_answers_while_the_peer_is_still_in_the_menu_is_announced_as_the_peer_comes_back(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    call = connected(client, net, db, svc)
    star(net, call)
    call.peer.press("1")  # the peer hears "Calling the crisis line..." and is not back in the room yet
    handoff = db.scalar(select(Handoff))
    mark = len(net.state.requests)
    TestCaller(client, number=LINE, call_sid=handoff.call_sid).post(
        f"{PUBLIC_BASE}/peer/handoff/{handoff.id}/status", CallStatus="in-progress")
    leg_id = call.peer.twiml.find("Dial").get("action").split("/leg/")[1].split("/")[0]
    rejoin = f"{PUBLIC_BASE}/peer/leg/{leg_id}/rejoin?what=crisis_answered"
    assert rest(net, mark)[-1] == (f"/Calls/{call.peer.call_sid}.json", {"Url": [rejoin], "Method": ["POST"]})
    call.peer.post(rejoin)
    assert call.peer.said == "The crisis counselor is on the line. You may stay, or hang up when you are ready."
    assert call.peer.twiml.find("Dial/Conference").text == call.room
    assert call.peer.twiml.find("Dial").get("hangupOnStar") == "true"


def test_a_peer_who_hangs_up_in_the_room_before_the_caller_gets_there_the_caller_is_told_and_waits_again(  # type: ignore[no-untyped-def]
        svc, db, client, net) -> None:
    make_peer(db, svc.vault, display_name="sam", phone="+15555550131")
    caller = ask_for_peer(client, net, "+15555550197")
    form = creates(net)[0]
    peer = pick_up(client, net, form)
    peer.press("1")
    req = db.scalar(select(PeerRequest))
    # The peer is in the room alone and hangs up before the caller's redirect reaches the line.
    enter(net, peer.call_sid, f"call-{req.id}", False)
    leave(net, peer.call_sid)
    peer.post(peer.twiml.find("Dial").get("action"), DialCallStatus="completed", CallStatus="completed")
    peer.post(form["StatusCallback"][0], CallStatus="completed", CallDuration="30")
    caller.post(f"{PUBLIC_BASE}/peer/caller/{req.id}/connect?lang=en")
    # Never into an empty room: told, and back in the queue in the same place.
    assert caller.said.startswith("The peer's line dropped")
    assert caller.twiml.find("Dial") is None and caller.twiml.find("Enqueue") is not None
    db.expire_all()
    again = db.scalar(select(PeerRequest))
    assert (again.status, again.peer_id, again.arrived_at) == ("waiting", None, req.arrived_at)
    assert db.scalar(select(Peer)).status == "wrap_up"
