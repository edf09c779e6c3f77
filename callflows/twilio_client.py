"""The one module that talks to Twilio's REST API (Calls, Conferences and Participants, Recordings, Messages).

Every request goes to ``TWILIO_API_BASE_URL`` with Twilio's own paths and form fields, so a
local server that speaks the same API (the simulator, the tests) can stand in for Twilio, and
so can SignalWire's compatibility API (``TELEPHONY_PROVIDER=signalwire``: the base URL
``https://{space}.signalwire.com/api/laml``, the Project ID and API token as credentials).
Nothing here assumes the shape of an id (SignalWire's are UUIDs, Twilio's ``CA`` + 32 hex).
A provider with another REST API (Telnyx's JSON, Plivo's) would implement
:class:`TelephonyGateway` and be named in :data:`GATEWAYS`.

Exceptions: :class:`~callflows.errors.TwilioGatewayError` wraps what the REST API or the
network refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

import httpx
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from callflows.errors import TwilioGatewayError
from callflows.settings import Settings

API_VERSION = "2010-04-01"
REST_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class RecordingInfo:
    """One recording of the account, as Twilio's Recordings list describes it."""

    sid: str
    call_sid: str | None
    duration_s: int | None  # None while Twilio does not know it yet (it says -1)
    created_at: datetime  # aware, UTC
    status: str  # "completed" once the audio can be fetched ("in-progress", "processing", "absent"...)


class TelephonyGateway(Protocol):
    """What the line asks of a provider's REST API: the seam for a provider that is not Twilio-compatible."""

    def recording_url(self, recording_sid: str) -> str:
        """A recording's resource URL (as the recording status callback would post it)."""
        ...

    def fetch_recording(self, recording_sid: str) -> bytes:
        """Download a recording's WAV audio."""
        ...

    def delete_recording(self, recording_sid: str) -> None:
        """Delete the provider's copy of a recording."""
        ...

    def list_recordings(self, since: datetime) -> list[RecordingInfo]:
        """The account's recordings created at or after ``since``."""
        ...

    def create_call(self, to: str, url: str, status_callback: str, **extra: Any) -> str:
        """Place an outbound call from the line's number; its call id."""
        ...

    def update_call(self, call_sid: str, **fields: Any) -> None:
        """Redirect or end a live call."""
        ...

    def send_sms(self, to: str, body: str) -> str:
        """Send a text message from the line's number; its id."""
        ...


class TwilioGateway:
    """Thin, typed wrapper over the ``twilio`` library's Client, pointed at our base URL."""

    def __init__(self, settings: Settings, client: Client | None = None) -> None:
        self.settings = settings
        # A hung connection to Twilio must not hold a webhook (and the caller) past Twilio's own
        # webhook timeout: every REST call gives up after REST_TIMEOUT_S.
        self.client = client or Client(settings.twilio_account_sid, settings.twilio_auth_token or "unset",
                                       http_client=TwilioHttpClient(timeout=REST_TIMEOUT_S))
        # Domain.base_url is where the library sends every api.twilio.com request.
        self.client.api.base_url = settings.twilio_api_base_url

    @property
    def account_url(self) -> str:
        """Base URL of this account's resources."""
        return f"{self.settings.twilio_api_base_url}/{API_VERSION}/Accounts/{self.settings.twilio_account_sid}"

    def recording_media_url(self, recording_sid: str, fmt: str = "wav") -> str:
        """Where the audio of a recording can be fetched."""
        return f"{self.account_url}/Recordings/{recording_sid}.{fmt}"

    def recording_url(self, recording_sid: str) -> str:
        """A recording's resource URL, in the form Twilio posts as ``RecordingUrl``."""
        return f"{self.account_url}/Recordings/{recording_sid}"

    def fetch_recording(self, recording_sid: str) -> bytes:
        """Download a recording's WAV audio (HTTP basic auth with the account SID and token)."""
        # The twilio library's HTTP client hands back bodies as decoded text, which corrupts
        # audio, so the media is fetched as bytes with httpx: same URL, same basic auth.
        # Twilio answers with a redirect to its media store; httpx drops the credentials when
        # a redirect leaves the host.
        url = self.recording_media_url(recording_sid)
        try:
            response = httpx.get(url, auth=(self.settings.twilio_account_sid, self.settings.twilio_auth_token),
                                 timeout=60.0, follow_redirects=True)
        except httpx.HTTPError as exc:
            raise TwilioGatewayError(f"GET {url}: {exc}") from exc
        if response.status_code != 200:
            raise TwilioGatewayError(f"fetching recording {recording_sid}: HTTP {response.status_code}")
        return response.content

    def delete_recording(self, recording_sid: str) -> None:
        """Delete Twilio's copy of a recording (after ours is stored safely)."""
        try:
            self.client.api.v2010.accounts(self.settings.twilio_account_sid).recordings(recording_sid).delete()
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"deleting recording {recording_sid}: {exc}") from exc

    def list_recordings(self, since: datetime) -> list[RecordingInfo]:
        """The account's recordings created at or after ``since`` (every page), newest first."""
        since = since.astimezone(timezone.utc)
        try:
            # Twilio documents the filter as a GMT date (``DateCreated>=YYYY-MM-DD``), so the
            # date is sent and the exact moment is applied here. The library follows
            # ``next_page_uri`` until the last page.
            found = self.client.api.v2010.accounts(self.settings.twilio_account_sid).recordings.list(
                date_created_after=since.date().isoformat())
        except (TwilioException, OSError, ValueError) as exc:  # ValueError: a page that is not JSON
            raise TwilioGatewayError(f"listing recordings: {exc}") from exc
        return [RecordingInfo(sid=str(rec.sid), call_sid=rec.call_sid or None, duration_s=_seconds(rec.duration),
                              created_at=rec.date_created, status=str(rec.status or ""))
                for rec in found if rec.sid and rec.date_created is not None and rec.date_created >= since]

    def create_call(self, to: str, url: str, status_callback: str, **extra: Any) -> str:
        """Place an outbound call from the line's number; returns the new call SID."""
        try:
            call = self.client.calls.create(
                to=to,
                from_=self.settings.twilio_phone_number,
                url=url,
                status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                **extra,
            )
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"creating call: {exc}") from exc
        return str(call.sid)

    def update_call(self, call_sid: str, **fields: Any) -> None:
        """Redirect, end or otherwise change a live call (``url=``, ``status='completed'``...)."""
        try:
            self.client.calls(call_sid).update(**fields)
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"updating call {call_sid}: {exc}") from exc

    def call_status(self, call_sid: str) -> str | None:
        """A call's status as Twilio knows it now (``in-progress``, ``completed``...); None when Twilio has no such call."""
        try:
            call = self.client.calls(call_sid).fetch()
        except TwilioRestException as exc:
            if exc.status == 404:
                return None
            raise TwilioGatewayError(f"fetching call {call_sid}: {exc}") from exc
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"fetching call {call_sid}: {exc}") from exc
        return str(call.status or "") or None

    def conference_sid(self, friendly_name: str) -> str | None:
        """The SID of the conference called ``friendly_name`` while it is in progress (None once it has ended)."""
        try:
            found = self.client.conferences.list(friendly_name=friendly_name, status="in-progress", limit=1)
        except (TwilioException, OSError, ValueError) as exc:  # ValueError: a page that is not JSON
            raise TwilioGatewayError(f"finding conference {friendly_name}: {exc}") from exc
        return str(found[0].sid) if found else None

    def add_participant(self, conference: str, to: str, status_callback: str, **extra: Any) -> str:
        """Dial ``to`` from the line's number into a conference (SID or friendly name); returns the new call SID.

        ``extra`` takes the Participants API's own fields (``muted``, ``coaching``,
        ``call_sid_to_coach``, ``beep``, ``early_media``, ``timeout``, ``end_conference_on_exit``...).
        """
        try:
            participant = self.client.conferences(conference).participants.create(
                from_=self.settings.twilio_phone_number,
                to=to,
                status_callback=status_callback,
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                **extra,
            )
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"adding a participant to {conference}: {exc}") from exc
        return str(participant.call_sid)

    def update_participant(self, conference_sid: str, call_sid: str, **fields: Any) -> None:
        """Change a participant: ``muted``, ``coaching``/``call_sid_to_coach``, ``hold``, ``announce_url``."""
        try:
            self.client.conferences(conference_sid).participants(call_sid).update(**fields)
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"updating participant {call_sid}: {exc}") from exc

    def send_sms(self, to: str, body: str) -> str:
        """Send a text message from the line's number; returns the message SID."""
        try:
            message = self.client.messages.create(to=to, from_=self.settings.twilio_phone_number, body=body)
        except (TwilioException, OSError) as exc:  # requests errors are OSErrors
            raise TwilioGatewayError(f"sending SMS: {exc}") from exc
        return str(message.sid)


# TELEPHONY_PROVIDER -> the gateway that speaks its REST API (SignalWire's is Twilio's at another base URL).
GATEWAYS: dict[str, Callable[[Settings], TwilioGateway]] = {"twilio": TwilioGateway, "signalwire": TwilioGateway}


def gateway_for(settings: Settings) -> TwilioGateway:
    """The REST client of the configured provider."""
    return GATEWAYS[settings.provider.name](settings)


def _seconds(duration: str | None) -> int | None:
    """Twilio's ``duration`` (a string; "-1" while unknown) as whole seconds."""
    try:
        seconds = int(duration or "")
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
