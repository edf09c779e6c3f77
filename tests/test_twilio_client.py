"""The one Twilio REST client sends Twilio's own paths and fields to TWILIO_API_BASE_URL."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest

from callflows.settings import Settings
from callflows.twilio_client import RecordingInfo, TwilioGateway
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


def test_listing_recordings_sends_twilios_filter_and_reads_every_page(  # type: ignore[no-untyped-def]
        gateway: TwilioGateway, phone_network) -> None:
    now = datetime(2025, 3, 4, 12, 30, 15, tzinfo=timezone.utc)
    sids = [phone_network.state.add_recording(b"RIFF....WAVE", call_sid=f"CA{i:032d}", duration_s=i,
                                              created_at=now - timedelta(minutes=i)) for i in range(52)]
    phone_network.state.add_recording(b"RIFF....WAVE", call_sid="CA" + "9" * 32, duration_s=7,
                                      created_at=datetime(2025, 3, 2, 23, 59, 59, tzinfo=timezone.utc))
    listed = gateway.list_recordings(datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc))
    assert listed[0] == RecordingInfo(sid=sids[0], call_sid="CA" + "0" * 32, duration_s=0, created_at=now,
                                      status="completed")
    assert [r.sid for r in listed] == sids  # newest first, across two pages
    assert [r.duration_s for r in listed] == list(range(52))
    recordings = f"/2010-04-01/Accounts/{TEST_ACCOUNT_SID}/Recordings.json"
    assert [(r.method, r.path, r.query, r.auth) for r in phone_network.state.requests] == [
        ("GET", recordings, {"DateCreated>": ["2025-03-03"]}, (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)),
        ("GET", recordings, {"DateCreated>": ["2025-03-03"], "PageSize": ["50"], "Page": ["1"]},
         (TEST_ACCOUNT_SID, TEST_AUTH_TOKEN)),
    ]


def test_the_exact_moment_is_applied_to_the_days_twilio_lists(  # type: ignore[no-untyped-def]
        gateway: TwilioGateway, phone_network) -> None:
    since = datetime(2025, 3, 3, 12, 0, tzinfo=timezone.utc)
    phone_network.state.add_recording(b"RIFF....WAVE", call_sid="CA" + "1" * 32, created_at=since - timedelta(hours=1))
    kept = phone_network.state.add_recording(b"RIFF....WAVE", call_sid="CA" + "2" * 32, created_at=since)
    deleted = phone_network.state.add_recording(b"RIFF....WAVE", call_sid="CA" + "3" * 32,
                                                created_at=since + timedelta(hours=1))
    gateway.delete_recording(deleted)
    assert [r.sid for r in gateway.list_recordings(since)] == [kept]  # the deleted one is gone from the list


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


def test_listing_failures_are_gateway_errors(tmp_path) -> None:  # type: ignore[no-untyped-def]
    closed = Settings(instance_path=tmp_path, twilio_account_sid=TEST_ACCOUNT_SID, twilio_auth_token=TEST_AUTH_TOKEN,
                      twilio_api_base_url="http://127.0.0.1:1")  # nothing listens on port 1
    with pytest.raises(TwilioGatewayError, match="listing recordings"):
        TwilioGateway(closed).list_recordings(datetime(2025, 3, 3, tzinfo=timezone.utc))
