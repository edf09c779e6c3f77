"""The phone network rings peers' phones, holds callers in queues and bridges them in conferences.

A small stand-in app (served over real HTTP) plays the line's side with Twilio's documented
TwiML, so these tests pin the network's behaviour independently of the routing code.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask, Response, request
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Dial, Gather, VoiceResponse
from werkzeug.serving import make_server

from callflows.errors import TwilioGatewayError
from callflows.settings import Settings
from simulator.engine import HttpTransport, HubClient, Leg, ScriptActor, new_call_sid
from callflows.twilio_client import TwilioGateway
from tests.helpers import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN
from tests.workers import wait_for


class StandIn:
    """A minimal line: whisper with a 1-key gather, hold queue, conference, status callbacks."""

    def __init__(self, network_url: str, tmp_path: Path) -> None:
        self.hits: list[tuple[str, dict[str, str], bool]] = []  # (path, form, signature valid)
        self.url = ""
        self.gateway = TwilioGateway(Settings(instance_path=tmp_path, twilio_account_sid=TEST_ACCOUNT_SID,
                                              twilio_auth_token=TEST_AUTH_TOKEN, twilio_api_base_url=network_url))
        self.caller_sid = ""
        self.machine_detection = False
        self.app = Flask("stand-in")
        validator = RequestValidator(TEST_AUTH_TOKEN)

        def twiml(doc: VoiceResponse) -> Response:
            return Response(str(doc), mimetype="text/xml")

        @self.app.before_request
        def keep() -> None:
            form = request.form.to_dict()
            valid = validator.validate(self.url + request.full_path.rstrip("?"), form,
                                       request.headers.get("X-Twilio-Signature", ""))
            self.hits.append((request.path, form, valid))

        @self.app.post("/incoming")
        def incoming() -> Response:
            self.caller_sid = request.form["CallSid"]
            extra = {"machine_detection": "Enable"} if self.machine_detection else {}
            self.gateway.create_call("+15555550101", f"{self.url}/whisper", f"{self.url}/peer-status", **extra)
            doc = VoiceResponse()
            doc.say("Finding a peer for you.")
            doc.enqueue("peers", wait_url=f"{self.url}/hold", action=f"{self.url}/left-queue")
            doc.say("Nobody could answer.")
            return twiml(doc)

        @self.app.post("/hold")
        def hold() -> Response:
            doc = VoiceResponse()
            doc.say(f"You are number {request.form['QueuePosition']} in line.")
            doc.pause(length=1)
            return twiml(doc)

        @self.app.post("/whisper")
        def whisper() -> Response:
            doc = VoiceResponse()
            gather = Gather(num_digits=1, timeout=5, action=f"{self.url}/accept")
            gather.say("A caller is waiting. Press 1 to accept.")
            doc.append(gather)
            doc.hangup()
            return twiml(doc)

        @self.app.post("/accept")
        def accept() -> Response:
            self.gateway.update_call(self.caller_sid, url=f"{self.url}/bridge", method="POST")
            doc = VoiceResponse()
            dial = Dial(action=f"{self.url}/peer-dial-done")
            dial.conference("room-1", end_conference_on_exit=True)
            doc.append(dial)
            return twiml(doc)

        @self.app.post("/bridge")
        def bridge() -> Response:
            doc = VoiceResponse()
            doc.say("You are connected to a peer.")
            dial = Dial(action=f"{self.url}/caller-dial-done")
            dial.conference("room-1", end_conference_on_exit=True)
            doc.append(dial)
            return twiml(doc)

        @self.app.post("/peer-dial-done")
        @self.app.post("/caller-dial-done")
        def dial_done() -> Response:
            doc = VoiceResponse()
            doc.hangup()
            return twiml(doc)

        @self.app.post("/left-queue")
        @self.app.post("/peer-status")
        @self.app.post("/status")
        def ignored() -> Response:
            return twiml(VoiceResponse())

    def paths(self) -> list[str]:
        """Paths requested, in order."""
        return [path for path, _, _ in self.hits]

    def forms(self, path: str) -> list[dict[str, str]]:
        """Form data of every request to ``path``."""
        return [form for p, form, _ in self.hits if p == path]


@pytest.fixture
def stand_in(phone_network, tmp_path: Path) -> Iterator[StandIn]:  # type: ignore[no-untyped-def]
    """The stand-in line on a real port."""
    line = StandIn(phone_network.base_url, tmp_path)
    server = make_server("127.0.0.1", 0, line.app, threaded=True)
    line.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    phone_network.state.ring_s = 0.1
    yield line
    phone_network.state.wait_for_legs()
    server.shutdown()
    thread.join(timeout=5)


def call_line(line: StandIn, network_url: str, script: list[str], hold_s: float = 3.0) -> Leg:
    """The caller dials the stand-in line and stays until the call ends."""
    hub = HubClient(network_url)
    sid = hub.register("+15555550190", "+15005550006", new_call_sid())
    leg = Leg(HttpTransport(), TEST_AUTH_TOKEN, sid, "+15555550190", "+15005550006",
              ScriptActor(script, talk_s=0.5, hold_s=hold_s), account_sid=TEST_ACCOUNT_SID, hub=hub,
              status_callback=f"{line.url}/status", max_s=30)
    leg.run(f"{line.url}/incoming")
    return leg


def statuses(line: StandIn) -> list[str]:
    """CallStatus of each peer status callback, in order."""
    return [form["CallStatus"] for form in line.forms("/peer-status")]


def test_accepting_peer_is_bridged_with_the_caller(stand_in: StandIn, phone_network) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.peer_answers = "accept"
    leg = call_line(stand_in, phone_network.base_url, [])
    phone_network.state.wait_for_legs()

    assert leg.heard[0] == "Finding a peer for you."
    assert "You are number 1 in line." in leg.heard
    assert "You are connected to a peer." in leg.heard
    assert "Nobody could answer." not in leg.heard
    assert all(valid for _, _, valid in stand_in.hits), [p for p, _, v in stand_in.hits if not v]
    whisper = stand_in.forms("/whisper")[0]
    assert whisper["To"] == "+15555550101" and whisper["Direction"] == "outbound-api"
    assert "AnsweredBy" not in whisper
    assert stand_in.forms("/accept")[0]["Digits"] == "1"
    # Leaving the queue because of the REST redirect is reported to the Enqueue action.
    assert stand_in.forms("/left-queue")[0]["QueueResult"] == "redirected"
    # The caller hung up after talking; endConferenceOnExit ended the peer's Dial, then its call.
    assert stand_in.forms("/peer-dial-done")[0]["DialCallStatus"] == "completed"
    assert statuses(stand_in) == ["initiated", "ringing", "in-progress", "completed"]
    assert stand_in.forms("/status")[-1]["CallStatus"] == "completed"
    peer_sid = whisper["CallSid"]
    assert phone_network.state.calls[peer_sid]["status"] == "completed"
    assert phone_network.state.conferences == {}


@pytest.mark.parametrize("mode", ["ignore", "voicemail"])
def test_peer_who_presses_nothing_never_reaches_the_caller(stand_in: StandIn, phone_network, mode: str) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.peer_answers = mode
    stand_in.machine_detection = True
    leg = call_line(stand_in, phone_network.base_url, [], hold_s=1.5)
    phone_network.state.wait_for_legs()

    whisper = stand_in.forms("/whisper")[0]
    assert whisper["AnsweredBy"] == ("machine_start" if mode == "voicemail" else "human")
    assert "/accept" not in stand_in.paths()
    assert statuses(stand_in) == ["initiated", "ringing", "in-progress", "completed"]
    # The caller waited on hold, then hung up: the queue's action hears about it.
    assert "You are connected to a peer." not in leg.heard
    assert stand_in.forms("/left-queue")[-1]["QueueResult"] == "hangup"


@pytest.mark.parametrize("mode", ["no-answer", "busy"])
def test_unanswered_phone_reports_its_status(stand_in: StandIn, phone_network, mode: str) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.peer_answers = mode
    call_line(stand_in, phone_network.base_url, [], hold_s=1.0)
    phone_network.state.wait_for_legs()

    assert "/whisper" not in stand_in.paths()
    assert statuses(stand_in) == ["initiated", "ringing", mode]
    assert stand_in.forms("/peer-status")[-1]["CallDuration"] == "0"


def test_cancelling_a_ringing_leg(phone_network, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    line = StandIn(phone_network.base_url, tmp_path)
    server = make_server("127.0.0.1", 0, line.app, threaded=True)
    line.url = f"http://127.0.0.1:{server.server_port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        phone_network.state.peer_answers = "accept"
        phone_network.state.ring_s = 5.0
        sid = line.gateway.create_call("+15555550102", f"{line.url}/whisper", f"{line.url}/peer-status")
        line.gateway.update_call(sid, status="canceled")
        phone_network.state.wait_for_legs()
        assert "/whisper" not in line.paths()
        assert statuses(line)[-1] == "canceled"
        assert phone_network.state.calls[sid]["status"] == "canceled"
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_network_settings_reject_unknown_modes(phone_network) -> None:  # type: ignore[no-untyped-def]
    hub = HubClient(phone_network.base_url)
    assert hub.settings(peer_answers="ignore", answers={"+15555550103": "busy"})["peer_answers"] == "ignore"
    assert phone_network.state.mode_for("+15555550103") == "busy"
    assert phone_network.state.mode_for("+15555550101") == "ignore"
    from simulator import SimulatorError

    with pytest.raises(SimulatorError, match="HTTP 400"):
        hub.settings(peer_answers="maybe")




# Twilio's documented behaviour, pinned ------------------------------------------------------


@pytest.mark.parametrize(("detection", "mode", "expected"), [
    ("Enable", "accept", "human"), ("Enable", "voicemail", "machine_start"),
    ("Enable", "voicemail-silence", "machine_start"), ("Enable", "fax", "fax"), ("Enable", "unknown", "unknown"),
    ("DetectMessageEnd", "accept", "human"), ("DetectMessageEnd", "voicemail", "machine_end_beep"),
    ("DetectMessageEnd", "voicemail-silence", "machine_end_silence"),
    ("DetectMessageEnd", "voicemail-other", "machine_end_other"), ("DetectMessageEnd", "fax", "fax"),
    ("DetectMessageEnd", "unknown-silent", "unknown"),
])
def test_machine_detection_answers_as_twilio_documents_for_each_mode(stand_in: StandIn, phone_network, detection: str,  # type: ignore[no-untyped-def]
                                                                     mode: str, expected: str) -> None:
    phone_network.state.answers["+15555550101"] = mode
    sid = stand_in.gateway.create_call("+15555550101", f"{stand_in.url}/whisper", f"{stand_in.url}/peer-status",
                                       machine_detection=detection)
    phone_network.state.wait_for_legs()

    whisper = stand_in.forms("/whisper")[0]
    assert whisper["CallSid"] == sid and whisper["AnsweredBy"] == expected
    # Only a person who means to (accept, or a quiet person asked to press a key) presses 1.
    assert ("/accept" in stand_in.paths()) is (mode in ("accept", "unknown"))


def test_a_phone_not_picked_up_within_the_timeout_ends_no_answer(stand_in: StandIn, phone_network) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.answers.update({"+15555550101": "ignore", "+15555550102": "ignore"})
    phone_network.state.ring_after.update({"+15555550101": 1.5, "+15555550102": 1.5})
    short = stand_in.gateway.create_call("+15555550101", f"{stand_in.url}/whisper", f"{stand_in.url}/peer-status",
                                         timeout=1)
    long = stand_in.gateway.create_call("+15555550102", f"{stand_in.url}/whisper", f"{stand_in.url}/peer-status",
                                        timeout=5)
    phone_network.state.wait_for_legs()

    ended = {form["CallSid"]: form for form in stand_in.forms("/peer-status")
             if form["CallStatus"] not in ("initiated", "ringing", "in-progress")}
    assert (ended[short]["CallStatus"], ended[short]["CallDuration"]) == ("no-answer", "0")
    assert ended[long]["CallStatus"] == "completed"
    assert [form["CallSid"] for form in stand_in.forms("/whisper")] == [long]
    assert "+15555550101 does not answer (no-answer after 1 s)" in phone_network.state.events


def test_status_callback_sequence_numbers_count_per_call(stand_in: StandIn, phone_network) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.peer_answers = "ignore"
    first = stand_in.gateway.create_call("+15555550101", f"{stand_in.url}/whisper", f"{stand_in.url}/peer-status")
    # Asked for fewer events, the call numbers only the callbacks it sends.
    second = stand_in.gateway.client.calls.create(to="+15555550102", from_="+15005550006", url=f"{stand_in.url}/whisper",
                                                  status_callback=f"{stand_in.url}/peer-status",
                                                  status_callback_event=["answered", "completed"]).sid
    phone_network.state.wait_for_legs()

    def numbers(sid: str) -> list[tuple[str, str]]:
        return [(f["SequenceNumber"], f["CallStatus"]) for f in stand_in.forms("/peer-status") if f["CallSid"] == sid]

    assert numbers(first) == [("0", "initiated"), ("1", "ringing"), ("2", "in-progress"), ("3", "completed")]
    assert numbers(second) == [("0", "in-progress"), ("1", "completed")]


def test_rest_updates_of_a_ringing_call_follow_twilio(stand_in: StandIn, phone_network) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.peer_answers = "accept"
    phone_network.state.ring_s = 1.0
    sid = stand_in.gateway.create_call("+15555550101", f"{stand_in.url}/peer-status", f"{stand_in.url}/peer-status")
    # A new Url for a call still ringing is what it runs when answered (no 21220: it is not over).
    stand_in.gateway.update_call(sid, url=f"{stand_in.url}/whisper", method="POST")
    phone_network.state.wait_for_legs()
    assert [form["CallSid"] for form in stand_in.forms("/whisper")] == [sid]
    assert stand_in.forms("/accept")[0]["Digits"] == "1"


def test_canceling_an_answered_call_leaves_it_alone_and_completing_ends_it(stand_in: StandIn, phone_network) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.peer_answers = "accept"
    stand_in.caller_sid = new_call_sid()  # nobody to bridge: the peer waits in the room
    HubClient(phone_network.base_url).register("+15555550190", "+15005550006", stand_in.caller_sid)
    sid = stand_in.gateway.create_call("+15555550101", f"{stand_in.url}/whisper", f"{stand_in.url}/peer-status")
    hub = HubClient(phone_network.base_url, want_events=False)
    wait_for(lambda: hub.state(sid)["call"].get("conference") == "room-1", 30, "the peer to wait in the room")

    stand_in.gateway.update_call(sid, status="canceled")  # Twilio: canceled only stops a queued or ringing call
    assert hub.state(sid)["call"]["status"] == "in-progress"
    stand_in.gateway.update_call(sid, status="completed")
    phone_network.state.wait_for_legs()
    assert phone_network.state.calls[sid]["status"] == "completed"
    assert statuses(stand_in)[-1] == "completed"


def test_twilio_refuses_a_number_it_cannot_dial_and_a_redirect_of_an_ended_call(stand_in: StandIn, phone_network) -> None:  # type: ignore[no-untyped-def]
    phone_network.state.answers["+15555550109"] = "refused"
    with pytest.raises(TwilioGatewayError, match="HTTP 400 error: Unable to create record: The .To. number \\+15555550109 is not a valid"):
        stand_in.gateway.create_call("+15555550109", f"{stand_in.url}/whisper", f"{stand_in.url}/peer-status")
    assert not any(call.get("To") == "+15555550109" for call in phone_network.state.calls.values())

    gone = HubClient(phone_network.base_url).register("+15555550190", "+15005550006", new_call_sid())
    HubClient(phone_network.base_url).act(gone, "end", status="completed", duration="3")
    with pytest.raises(TwilioGatewayError, match="HTTP 400 error: .*Call is not in-progress. Cannot redirect."):
        stand_in.gateway.update_call(gone, url=f"{stand_in.url}/bridge", method="POST")
    with pytest.raises(TwilioGatewayError, match="HTTP 404 error: .*The requested resource was not found"):
        stand_in.gateway.update_call(new_call_sid(), url=f"{stand_in.url}/bridge", method="POST")

