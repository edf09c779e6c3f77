"""The one Twilio REST client sends Twilio's own paths and fields to TWILIO_API_BASE_URL."""
from __future__ import annotations

import pytest

from callflows.settings import Settings
from callflows.twilio_client import TwilioGateway
from callflows.errors import TwilioGatewayError
from tests.helpers import TEST_ACCOUNT_SID, TEST_AUTH_TOKEN


@pytest.fixture
def gateway(phone_network, tmp_path) -> TwilioGateway:  # type: ignore[no-untyped-def]
    settings = Settings(instance_path=tmp_path, twilio_account_sid=TEST_ACCOUNT_SID,
                        twilio_auth_token=TEST_AUTH_TOKEN, twilio_phone_number="+15005550006",
                        twilio_api_base_url=phone_network.base_url)
    return TwilioGateway(settings)


def test_create_call_posts_twilio_fields(gateway: TwilioGateway, phone_network) -> None:  # type: ignore[no-untyped-def]
    sid = gateway.create_call("+15555550101", "https://peerline.test/voice/x", "https://peerline.test/voice/status")
    assert sid.startswith("CA") and len(sid) == 34
    sent = phone_network.state.requests[-1]
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Calls.json"
    assert sent.auth == (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)
    assert sent.form == {
        "To": ["+15555550101"],
        "From": ["+15005550006"],
        "Url": ["https://peerline.test/voice/x"],
        "StatusCallback": ["https://peerline.test/voice/status"],
        "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
    }


def test_recording_fetch_and_delete(gateway: TwilioGateway, phone_network) -> None:  # type: ignore[no-untyped-def]
    sid = phone_network.state.add_recording(b"RIFF....WAVE")
    assert gateway.fetch_recording(sid) == b"RIFF....WAVE"
    gateway.delete_recording(sid)
    assert sid not in phone_network.state.recordings
    assert [(r.method, r.path) for r in phone_network.state.requests] == [
        ("GET", f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings/{sid}.wav"),
        ("DELETE", f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings/{sid}.json"),
    ]
    with pytest.raises(TwilioGatewayError):
        gateway.fetch_recording(sid)


def test_sms_sends_body_from_line_number(gateway: TwilioGateway, phone_network) -> None:  # type: ignore[no-untyped-def]
    gateway.send_sms("+15555550150", "A high-risk voicemail is waiting for review.")
    assert phone_network.state.messages[-1]["Body"] == "A high-risk voicemail is waiting for review."
    assert phone_network.state.requests[-1].form["From"] == ["+15005550006"]
