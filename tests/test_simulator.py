"""The caller simulator follows the app's TwiML like Twilio: whole calls, from greeting to voicemail."""
from __future__ import annotations

import math
import os
import shutil
import struct
import wave
from pathlib import Path

import pytest
from click.testing import CliRunner
from rq import Queue
from sqlalchemy import select

from ivr.demo import speak_to_wav
from simulator.cli import TerminalActor, call_command
from simulator.engine import FlaskTransport, HangUp, HttpTransport, HubClient, Leg, ScriptActor, new_call_sid
from models import Call, Voicemail
from queues.connection import TRANSCRIPTION_QUEUE
from queues.scheduler import transcription_job_id
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN


@pytest.fixture
def app_config(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The app sends its REST requests (recordings, calls) to the phone network."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return app_config


@pytest.fixture
def message_wav(tmp_path: Path) -> Path:
    """A spoken voicemail (espeak-ng), or a one-second tone where espeak-ng is missing."""
    dest = tmp_path / "message.wav"
    if shutil.which("espeak-ng") and shutil.which("sox"):
        assert speak_to_wav("Hello, I would like someone to call me back tomorrow.", "en", dest)
        return dest
    with wave.open(str(dest), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(8000)
        fh.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 8000 * 2 * math.pi * 440)))
                                for i in range(8000)))
    return dest


def test_full_call_over_http_leaves_a_pending_voicemail(live_app: str, phone_network, db, redis,  # type: ignore[no-untyped-def]
                                                        message_wav: Path) -> None:
    hub = HubClient(phone_network.base_url)
    sid = hub.register("+15555550177", "+15005550006", new_call_sid())
    audio = message_wav.read_bytes()
    lines: list[str] = []
    leg = Leg(HttpTransport({PUBLIC_BASE: live_app}), TEST_AUTH_TOKEN, sid, "+15555550177", "+15005550006",
              ScriptActor(["1", "4"], audio), account_sid=TEST_ACCOUNT_SID, hub=hub, out=lines.append,
              status_callback=f"{PUBLIC_BASE}/voice/status")

    assert leg.run(f"{PUBLIC_BASE}/voice/incoming") == "completed"

    heard = " ".join(leg.heard)
    assert heard.startswith("Peer support line. Para español, oprima 2. For English, press 1.")
    assert "Welcome to Peer Line." in heard
    assert "To leave a message, press 4." in heard
    assert "Leave your message after the tone." in heard
    assert leg.heard[-2:] == ["Thank you. Your message is saved. Our team will check it soon.",
                              "Thank you for calling Peer Line. Take care. If you ever feel unsafe, call or text 9 8 8, "
                              "any time."]
    assert "  [beep]" in lines and "> you press 4" in lines
    vm = db.scalar(select(Voicemail))
    assert vm is not None and vm.status == "pending"
    assert vm.language == "en"
    with wave.open(str(message_wav), "rb") as fh:
        assert vm.duration_s == max(1, round(fh.getnframes() / fh.getframerate()))
    # The recording the app will fetch is the audio the caller left, on the network.
    assert phone_network.state.recordings[vm.recording_sid] == audio
    # ...listed like Twilio's with the call it was made in, so a lost status callback is recoverable.
    meta = phone_network.state.recording_meta[vm.recording_sid]
    assert (meta.call_sid, meta.duration_s) == (sid, vm.duration_s)
    assert vm.recording_url == f"{phone_network.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings/" \
                               f"{vm.recording_sid}"
    queue = Queue(TRANSCRIPTION_QUEUE, connection=redis)
    assert queue.job_ids == [transcription_job_id(vm.id)]
    assert queue.fetch_job(transcription_job_id(vm.id)).args == (vm.id,)
    call = db.scalar(select(Call).where(Call.call_sid == sid))
    assert call.outcome == "voicemail"
    assert call.status == "completed" and call.ended_at is not None
    assert phone_network.state.calls[sid]["status"] == "completed"


def test_peerline_call_script_and_record(live_app: str, phone_network, db, redis,  # type: ignore[no-untyped-def]
                                         message_wav: Path) -> None:
    result = CliRunner().invoke(call_command, [
        "--script", "1,*,4", "--record", str(message_wav), "--url", live_app, "--public-url", PUBLIC_BASE,
        "--token", TEST_AUTH_TOKEN, "--network", phone_network.base_url, "--from", "+15555550178",
    ])
    assert result.exit_code == 0, result.output
    out = result.output
    assert '"Welcome to Peer Line. You are not alone.' in out
    assert out.count('"What would you like to do?') == 2  # star repeated the menu
    assert "> you press *" in out
    assert "> you leave a" in out
    assert '"Thank you. Your message is saved. Our team will check it soon."' in out
    assert out.rstrip().endswith("Call ended (completed).")
    vm = db.scalar(select(Voicemail))
    assert vm is not None and vm.status == "pending" and vm.job_id == transcription_job_id(vm.id)


def test_script_runs_through_the_flask_test_client(client) -> None:  # type: ignore[no-untyped-def]
    leg = Leg(FlaskTransport(client), TEST_AUTH_TOKEN, new_call_sid(), "+15555550179", "+15005550006",
              ScriptActor(["1", "2", "5"]), account_sid=TEST_ACCOUNT_SID)
    assert leg.run(f"{PUBLIC_BASE}/voice/incoming") == "completed"
    heard = " ".join(leg.heard)
    assert "Which stories would you like to hear?" in heard
    # "5" went back to the main menu (keys in short, after the first menu); then the script ran
    # out and the caller hung up there.
    assert leg.heard[-1] == "Star repeats. 9 for the crisis line."
    assert "What would you like to do?" in leg.heard[-7]
    methods = {method for method, _, _ in leg.requests}
    assert methods == {"POST"}


def test_wrong_token_is_refused(live_app: str, phone_network) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(call_command, [
        "--script", "1", "--url", live_app, "--public-url", PUBLIC_BASE, "--token", "not-the-token",
        "--network", phone_network.base_url,
    ])
    assert result.exit_code == 1
    assert "HTTP 403" in result.output


def test_answers_piped_into_peerline_call_are_kept_for_the_menus_while_on_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """``printf '1\\n2\\n' | peerline call``: a line waiting in the pipe is the next menu's answer, not a hang-up."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"2\n")
    os.close(write_fd)
    with open(read_fd, encoding="utf-8") as piped:
        monkeypatch.setattr("sys.stdin", piped)
        actor = TerminalActor()
        assert actor.stay("hold", 0.01) is True  # still on hold: the pipe's "2" is not Enter
        answer = actor.gather("Press 2 for a call back.", "dtmf speech", on_hold=True)
        assert answer is not None and answer.digits == "2"
        with pytest.raises(HangUp):  # the pipe is done: the caller hangs up
            actor.gather("Anything else?", "dtmf speech", on_hold=False)
