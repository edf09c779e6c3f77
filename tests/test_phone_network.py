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

from callflows.settings import Settings
from simulator.engine import HttpTransport, HubClient, Leg, ScriptActor, new_call_sid
from callflows.twilio_client import TwilioGateway
from tests.helpers import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN


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


