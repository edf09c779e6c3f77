"""TELEPHONY_PROVIDER: Twilio, or SignalWire's compatibility API (UUID ids, its own base URL and signing key).

The phone network plays SignalWire here: UUID call and recording ids, its REST API under
``/api/laml``, and webhooks signed with the project's signing key in ``X-SignalWire-Signature``.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from callflows.errors import SettingsError
from callflows.services import Services
from callflows.settings import Settings
from callflows.twilio_client import TwilioGateway, gateway_for
from ivr import create_app
from ivr.services import services
from models import Voicemail
from models.tables import PeerRequest, RingLeg
from queues.connection import TRANSCRIPTION_QUEUE
from simulator.cli import call_command
from simulator.engine import HttpTransport, HubClient, Leg, ScriptActor, new_call_sid
from tests.conftest import tone_wav
from tests.factories import make_peer
from tests.helpers import PUBLIC_BASE, TEST_AUTH_TOKEN, TestCaller, sign

PROJECT = "b3877c40-da60-4998-90ad-b792e98472af"  # SignalWire's Project ID is the AccountSid
API_TOKEN = "PTsignalwire-api-token-0123456789"
SIGNING_KEY = "PSKsignalwire-signing-key-abcdef"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
LINE = "+15005550006"
SIGNALWIRE_ENV = {"TELEPHONY_PROVIDER": "signalwire", "SIGNALWIRE_SPACE_URL": "example.signalwire.com",
                  "SIGNALWIRE_PROJECT_ID": PROJECT, "SIGNALWIRE_API_TOKEN": API_TOKEN,
                  "SIGNALWIRE_SIGNING_KEY": SIGNING_KEY, "TWILIO_PHONE_NUMBER": "+12025550100"}


# Settings ------------------------------------------------------------------------------

def test_signalwire_settings_choose_its_base_url_credentials_and_signature(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, SIGNALWIRE_ENV).check()
    assert settings.twilio_api_base_url == "https://example.signalwire.com/api/laml"
    assert (settings.twilio_account_sid, settings.twilio_auth_token) == (PROJECT, API_TOKEN)
    assert settings.provider.signature_header == "X-SignalWire-Signature"
    assert settings.webhook_signing_key == SIGNING_KEY
    assert settings.twilio_phone_number == "+12025550100"
    gateway = gateway_for(settings)
    assert gateway.recording_url("0a1b") == (
        f"https://example.signalwire.com/api/laml/2010-04-01/Accounts/{PROJECT}/Recordings/0a1b")
    assert gateway.client.api.base_url == "https://example.signalwire.com/api/laml"


def test_twilio_stays_the_default_with_its_header_and_auth_token(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, {"TWILIO_AUTH_TOKEN": "tok", "SIGNALWIRE_SIGNING_KEY": "ignored"}).check()
    assert settings.telephony_provider == "twilio"
    assert settings.twilio_api_base_url == "https://api.twilio.com"
    assert (settings.provider.signature_header, settings.webhook_signing_key) == ("X-Twilio-Signature", "tok")
    assert settings.twilio_phone_number == "+15005550006"  # Twilio's test number, for its test credentials


@pytest.mark.parametrize(("env", "problem"), [
    ({"TELEPHONY_PROVIDER": "telnyx"}, "TELEPHONY_PROVIDER: 'telnyx' is not one of twilio, signalwire"),
    ({**SIGNALWIRE_ENV, "SIGNALWIRE_SIGNING_KEY": ""}, "SIGNALWIRE_SIGNING_KEY: required with TELEPHONY_PROVIDER"),
    ({**SIGNALWIRE_ENV, "SIGNALWIRE_SPACE_URL": ""}, "SIGNALWIRE_SPACE_URL: required with TELEPHONY_PROVIDER"),
    # Twilio's test number (the default, for Twilio's test credentials) is no SignalWire number.
    ({**SIGNALWIRE_ENV, "TWILIO_PHONE_NUMBER": ""}, "TWILIO_PHONE_NUMBER: required with TELEPHONY_PROVIDER"),
])
def test_a_provider_that_cannot_work_stops_the_start_naming_the_variable(
        tmp_path: Path, env: dict[str, str], problem: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(tmp_path, env).check()
    assert len(raised.value.problems) == 1 and raised.value.problems[0].startswith(problem)


# Webhooks and REST through the phone network playing SignalWire --------------------------

@pytest.fixture
def app_config(app_config: dict[str, Any], phone_network: Any) -> dict[str, Any]:
    """The app set up for SignalWire, its REST API on the phone network under /api/laml."""
    phone_network.state.provider = "signalwire"
    phone_network.state.signing_key = SIGNING_KEY
    app_config.update(telephony_provider="signalwire", twilio_account_sid=PROJECT, twilio_auth_token=API_TOKEN,
                      signing_key=SIGNING_KEY, twilio_api_base_url=f"{phone_network.base_url}/api/laml")
    return app_config


def signalwire_caller(client: Any) -> TestCaller:
    return TestCaller(client, call_sid=str(uuid.uuid4()), token=SIGNING_KEY, signature_header="X-SignalWire-Signature",
                      account_sid=PROJECT)


def test_webhooks_take_signalwire_signatures_and_uuid_call_ids(client: Any) -> None:
    caller = signalwire_caller(client)
    caller.call()
    caller.press("1")
    assert "What would you like to do?" in " ".join(caller.heard)


@pytest.mark.parametrize(("header", "key"), [
    ("X-SignalWire-Signature", API_TOKEN),  # the REST token is not the signing key
    ("X-Twilio-Signature", TEST_AUTH_TOKEN),  # a Twilio account's token means nothing here
    ("X-Signature", SIGNING_KEY),  # an unknown header is no signature
])
def test_webhooks_refuse_other_keys_and_headers(client: Any, header: str, key: str) -> None:
    url = f"{PUBLIC_BASE}/voice/incoming"
    form = {"CallSid": str(uuid.uuid4()), "From": "+12025550143", "To": LINE, "AccountSid": PROJECT}
    response = client.post("/voice/incoming", data=form, headers={header: sign(url, form, key)})
    assert response.status_code == 403


def test_signalwire_signature_in_the_twilio_header_is_accepted_with_the_signing_key(client: Any) -> None:
    url = f"{PUBLIC_BASE}/voice/incoming"
    form = {"CallSid": str(uuid.uuid4()), "From": "+12025550143", "To": LINE, "AccountSid": PROJECT}
    response = client.post("/voice/incoming", data=form, headers={"X-Twilio-Signature": sign(url, form, SIGNING_KEY)})
    assert response.status_code == 200 and b"<Gather" in response.data


def test_twilio_accepts_only_its_own_header(app_config: dict[str, Any], engine: Any, redis: Any) -> None:
    application = create_app({**app_config, "telephony_provider": "twilio", "signing_key": "",
                              "twilio_auth_token": TEST_AUTH_TOKEN, "twilio_api_base_url": "https://api.twilio.com"})
    try:
        client = application.test_client()
        url = f"{PUBLIC_BASE}/voice/incoming"
        form = {"CallSid": "CA" + uuid.uuid4().hex, "From": "+12025550143", "To": LINE}
        signature = sign(url, form, TEST_AUTH_TOKEN)
        assert client.post("/voice/incoming", data=form, headers={"X-SignalWire-Signature": signature}).status_code == 403
        assert client.post("/voice/incoming", data=form, headers={"X-Twilio-Signature": signature}).status_code == 200
    finally:
        services(application).engine.dispose()


def test_a_peer_call_runs_end_to_end_with_uuid_ids_and_signalwire_rest(
        live_app: str, phone_network: Any, svc: Services, db: Any) -> None:
    network = phone_network.state
    network.peer_answers = "accept"
    network.rewrite = {PUBLIC_BASE: live_app}
    make_peer(db, svc.vault, display_name="Sam", phone="+12025550101")
    hub = HubClient(phone_network.base_url)
    sid = hub.register("+12025550144", LINE, new_call_sid("signalwire"))
    leg = Leg(HttpTransport({PUBLIC_BASE: live_app}, signature_header="X-SignalWire-Signature"), SIGNING_KEY, sid,
              "+12025550144", LINE, ScriptActor(["1", "1"], talk_s=0.5), account_sid=PROJECT, hub=hub,
              status_callback=f"{PUBLIC_BASE}/voice/status")
    try:
        assert leg.run(f"{PUBLIC_BASE}/voice/incoming") == "completed"
    finally:
        hub.close()
    network.wait_for_legs()

    assert UUID.fullmatch(sid)
    assert "A peer is here. Connecting you now." in leg.heard
    ring_leg = db.scalar(select(RingLeg))
    assert ring_leg is not None and UUID.fullmatch(ring_leg.call_sid) and ring_leg.status == "completed"
    request = db.scalar(select(PeerRequest))
    assert request.peer_id == ring_leg.peer_id and request.connected_at is not None
    # Every REST request went to SignalWire's compatibility paths, with the project's credentials.
    assert network.requests
    assert all(r.path.startswith(f"/api/laml/2010-04-01/Accounts/{PROJECT}/") for r in network.requests)
    assert {r.auth for r in network.requests} == {(PROJECT, API_TOKEN)}
    creates = [r for r in network.requests if r.method == "POST" and r.path.endswith("/Calls.json")]
    assert [c.form["To"] for c in creates] == [["+12025550101"]]
    # The caller was moved to the peer by a REST update of the caller's own (UUID) call.
    redirects = [r for r in network.requests if r.method == "POST" and r.path.endswith(f"/Calls/{sid}.json")]
    assert [r.form["Url"] for r in redirects] == [[f"{PUBLIC_BASE}/peer/caller/{ring_leg.request_id}/connect?lang=en"]]


def test_a_voicemail_is_fetched_and_deleted_through_signalwire_paths(
        phone_network: Any, svc: Services, client: Any, work_jobs: Any) -> None:
    network = phone_network.state
    audio = tone_wav(2.0)
    caller = signalwire_caller(client)
    rec_sid = network.add_recording(audio, call_sid=caller.call_sid)
    assert UUID.fullmatch(rec_sid)
    caller.call()
    recording_url = f"{phone_network.base_url}/api/laml/2010-04-01/Accounts/{PROJECT}/Recordings/{rec_sid}"
    caller.post("/voice/voicemail/recording", RecordingSid=rec_sid, RecordingStatus="completed",
                RecordingDuration="2", RecordingUrl=recording_url)
    work_jobs(TRANSCRIPTION_QUEUE)

    with svc.sessions() as session:
        vm = session.scalar(select(Voicemail).where(Voicemail.recording_sid == rec_sid))
        assert vm is not None and vm.recording_url == recording_url
        assert svc.vault.decrypt((Path(svc.settings.instance_path) / vm.audio_path).read_bytes()) == audio
    paths = [(r.method, r.path) for r in network.requests]
    base = f"/api/laml/2010-04-01/Accounts/{PROJECT}/Recordings/{rec_sid}"
    assert ("GET", f"{base}.wav") in paths
    # No speech model in this test: the provider's copy stays until the message is transcribed.
    assert not svc.settings.vosk_model_path and ("DELETE", f"{base}.json") not in paths


def test_lost_recordings_are_listed_through_signalwire_paths(phone_network: Any, svc: Services) -> None:
    network = phone_network.state
    rec_sid = network.add_recording(tone_wav(1.0), call_sid=str(uuid.uuid4()))
    found = svc.twilio.list_recordings(since=network.recording_meta[rec_sid].created_at - timedelta(minutes=1))
    assert [(r.sid, r.call_sid) for r in found] == [(rec_sid, network.recording_meta[rec_sid].call_sid)]
    assert network.requests[-1].path == f"/api/laml/2010-04-01/Accounts/{PROJECT}/Recordings.json"
    assert isinstance(svc.twilio, TwilioGateway)
    assert json.dumps(network.requests[-1].query)  # the DateCreated filter went along


def test_peerline_call_behaves_like_signalwire(live_app: str, phone_network: Any) -> None:
    result = CliRunner().invoke(call_command, [
        "--provider", "signalwire", "--script", "1,2", "--url", live_app, "--public-url", PUBLIC_BASE,
        "--token", SIGNING_KEY, "--network", phone_network.base_url, "--from", "+12025550145"])
    assert result.exit_code == 0, result.output
    call_id = re.search(r"\(call (\S+)\)\.", result.output)
    assert call_id is not None and UUID.fullmatch(call_id[1])
    assert '"Which stories would you like to hear?' in result.output
    assert result.output.rstrip().endswith("Call ended (completed).")
