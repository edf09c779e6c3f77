"""The one Twilio REST client sends Twilio's own paths and fields to TWILIO_API_BASE_URL."""
from __future__ import annotations

from datetime import datetime, timezone

import httpx
import pytest

from callflows.settings import Settings
from callflows.twilio_client import TwilioGateway
from callflows.errors import TwilioGatewayError
from tests.conftest import tone_wav
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


def test_recordings_list_is_twilios_json_shape(phone_network) -> None:  # type: ignore[no-untyped-def]
    created = datetime(2025, 3, 3, 8, 5, 9, tzinfo=timezone.utc)
    sid = phone_network.state.add_recording(tone_wav(3.0), call_sid="CA" + "4" * 32, created_at=created)
    base = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings"
    response = httpx.get(f"{phone_network.base_url}{base}.json", params={"DateCreated": "2025-03-03"},
                         auth=(TEST_ACCOUNT_SID, TEST_AUTH_TOKEN))
    assert response.status_code == 200
    page = response.json()
    first = f"{base}.json?DateCreated=2025-03-03&PageSize=50&Page=0"
    assert {k: v for k, v in page.items() if k != "recordings"} == {
        "first_page_uri": first, "next_page_uri": None, "previous_page_uri": None, "page": 0, "page_size": 50,
        "uri": first, "start": 0, "end": 0}
    [item] = page["recordings"]
    assert {k: item[k] for k in ("sid", "call_sid", "duration", "date_created", "account_sid", "status", "uri")} == {
        "sid": sid, "call_sid": "CA" + "4" * 32, "duration": "3", "date_created": "Mon, 03 Mar 2025 08:05:09 +0000",
        "account_sid": TEST_ACCOUNT_SID, "status": "completed", "uri": f"{base}/{sid}.json"}


@pytest.mark.parametrize("query, found", [
    ({"DateCreated": "2025-03-03"}, ["b"]),
    ({"DateCreated<": "2025-03-03"}, ["b", "a"]),
    ({"DateCreated>": "2025-03-03"}, ["c", "b"]),
    ({"DateCreated>": "2025-03-03T08:05:09Z"}, ["c", "b"]),
    ({"DateCreated>": "2025-03-03T08:05:10Z"}, ["c"]),
    ({"DateCreated<": "2025-03-03T08:05:09Z"}, ["b", "a"]),
    ({"DateCreated>": "2025-03-02", "DateCreated<": "2025-03-03"}, ["b", "a"]),
])
def test_recordings_list_filters_like_twilio(phone_network, query: dict[str, str], found: list[str]) -> None:  # type: ignore[no-untyped-def]
    made = {name: phone_network.state.add_recording(b"RIFF....WAVE", created_at=moment) for name, moment in (
        ("a", datetime(2025, 3, 2, 23, 59, 59, tzinfo=timezone.utc)),
        ("b", datetime(2025, 3, 3, 8, 5, 9, tzinfo=timezone.utc)),
        ("c", datetime(2025, 3, 4, 0, 0, 0, tzinfo=timezone.utc)))}
    page = httpx.get(f"{phone_network.base_url}/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings.json",
                     params=query).json()
    assert [item["sid"] for item in page["recordings"]] == [made[name] for name in found]

