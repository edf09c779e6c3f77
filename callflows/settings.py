"""Settings from the environment. Every secret and connection string is read here, once.

Settings are checked when a process starts (:meth:`Settings.check`): a typo in a callback
window, a retry schedule or a time zone stops ``peerline serve`` and ``peerline worker`` with
a message naming the variable, instead of failing a caller in the middle of a call.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callflows.errors import SettingsError

TWILIO_API_HOST = "https://api.twilio.com"


@dataclass(frozen=True)
class Provider:
    """A telephony provider that speaks Twilio's TwiML, REST paths and HMAC-SHA1 webhook signatures."""

    name: str
    signature_header: str  # the header its webhooks carry the signature in
    api_base: str  # its REST base URL; "{space}" is SIGNALWIRE_SPACE_URL


# TELEPHONY_PROVIDER. A provider that differs beyond these three (Telnyx TeXML: JSON REST and
# Ed25519 signatures; Plivo: its own XML) needs an adapter (docs/operations.md, "Providers").
PROVIDERS = {
    "twilio": Provider("twilio", "X-Twilio-Signature", TWILIO_API_HOST),
    # SignalWire's compatibility API: https://{space}.signalwire.com/api/laml/2010-04-01/Accounts/{project}/...
    # with the Project ID and API token as basic auth; webhooks are signed with the project's signing key.
    "signalwire": Provider("signalwire", "X-SignalWire-Signature", "https://{space}/api/laml"),
}
WINDOW_CHOICES = ("now", "morning", "afternoon", "evening")
# The languages of the line's menus, hence of its voicemails and of their speech models.
SPEECH_LANGUAGES = ("en", "es")
MONITOR_NOTICES = ("whisper", "tone", "none")  # what a peer hears when someone starts listening


def parse_windows(spec: str) -> dict[str, tuple[int, int]]:
    """``morning=9-12,evening=18-1`` -> local start and end hours (an end before the start passes midnight)."""
    windows: dict[str, tuple[int, int]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.fullmatch(r"(\w+)=(\d{1,2})-(\d{1,2})", part)
        if not match or int(match[2]) > 23 or int(match[3]) > 24 or match[2] == match[3]:
            raise SettingsError([f"CALLBACK_WINDOWS: cannot read {part!r} (want name=start-end, hours 0-24)"])
        windows[match[1]] = (int(match[2]), int(match[3]) % 24)
    missing = set(WINDOW_CHOICES[1:]) - set(windows)
    if missing:
        raise SettingsError([f"CALLBACK_WINDOWS: missing {', '.join(sorted(missing))}"])
    return windows


def parse_schedule(spec: str) -> list[timedelta]:
    """``10m,1h`` -> the waits before the second, third... attempt (the last one repeats)."""
    units = {"s": 1, "m": 60, "h": 3600}
    waits = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        match = re.fullmatch(r"(\d+)([smh])", part)
        if not match or int(match[1]) == 0:
            raise SettingsError([f"CALLBACK_RETRY_SCHEDULE: cannot read {part!r} (want e.g. 10m or 1h)"])
        waits.append(timedelta(seconds=int(match[1]) * units[match[2]]))
    if not waits:
        raise SettingsError(["CALLBACK_RETRY_SCHEDULE is empty (want e.g. 10m,1h)"])
    return waits


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone such as ``America/New_York``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SettingsError([f"LINE_TIMEZONE: {name!r} is not an IANA time zone (e.g. America/New_York)"]) from exc


MAX_TRUSTED_PROXIES = 5  # more hops than any sane deployment: a typo (an address, a port) is caught


@dataclass(frozen=True)
class Settings:
    """The line's configuration; defaults make ``make run`` work with no settings."""

    instance_path: Path
    database_url: str = ""
    redis_url: str = ""
    public_base_url: str = "http://127.0.0.1:5000"
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str = ""
    twilio_phone_number: str = "+15005550006"
    twilio_api_base_url: str = TWILIO_API_HOST
    vosk_model_path: str = ""  # the default model, for any language without one of its own
    vosk_model_path_en: str = ""
    vosk_model_path_es: str = ""
    secret_key: str = ""
    data_key: str = ""
    lookup_key: str = ""  # PEERLINE_LOOKUP_KEY: the key lookup hashes derive from while data keys rotate
    crisis_number: str = "988"
    supervisor_number: str = ""
    gather_timeout_s: int = 10
    record_max_s: int = 180
    media_url_ttl_s: int = 3600
    delete_provider_recordings: bool = True
    retention_days_voicemail: int = 90
    retention_days_calls: int = 365
    peer_wrapup_seconds: int = 120
    peer_break_after_calls: int = 0  # 0 = no automatic break
    peers_ring_at_once: int = 2
    peer_missed_offers_break: int = 3  # offers in a row a peer's phone did not take before a break (0 = never)
    # Callbacks: windows are local hours in the line's IANA time zone (start-end, end may pass midnight).
    line_timezone: str = "America/New_York"
    callback_windows: str = "morning=9-12,afternoon=12-17,evening=17-21"
    callback_now_hours: int = 4  # how long a "now" callback stays open
    callback_max_attempts: int = 3
    callback_retry_schedule: str = "10m,1h"
    callback_max_concurrent: int = 2  # outbound callback attempts in progress at once
    telephony_provider: str = "twilio"  # a key of PROVIDERS
    signing_key: str = ""  # SignalWire: the project's webhook signing key (Twilio signs with the auth token)
    metrics_token: str = ""  # bearer token of GET /metrics; unset = /metrics is off (404)
    # Metrics: "answered within N seconds" and the share of callers the staffing advice aims for.
    service_level_seconds: int = 30
    service_level_target: int = 80  # percent
    caller_survey: bool = False  # the optional keypad survey after a peer call (off until a line decides to ask)
    research_key: str = ""  # keys research pseudonyms; apart from the data key so exports cannot join the database
    # In-call help (callflows.escalation): how long the supervisor's and the crisis line's phones
    # ring, and what a peer hears when a supervisor or trainee starts listening (whisper, tone, none).
    supervisor_answer_seconds: int = 25
    crisis_answer_seconds: int = 45
    monitor_notice: str = "whisper"
    # Reverse proxies in front of the web servers that set X-Forwarded-For / -Proto (0 = none:
    # the headers are ignored, so a client cannot choose the address the sign-in throttle sees).
    trusted_proxies: int = 0
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, instance_path: Path, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from environment variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        instance_path = Path(instance_path)
        problems: list[str] = []

        def number(name: str, default: int, minimum: int = 0) -> int:
            raw = env.get(name) or ""
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                problems.append(f"{name}: {raw!r} is not a whole number")
                return default
            if value < minimum:
                problems.append(f"{name}: {value} is below the minimum of {minimum}")
                return default
            return value

        provider = (env.get("TELEPHONY_PROVIDER") or "twilio").strip().lower()
        # SignalWire's own names are read too, so its dashboard's labels can be pasted as they are.
        signalwire = provider == "signalwire"
        space = (env.get("SIGNALWIRE_SPACE_URL") or "").strip().removeprefix("https://").strip("/")
        default_api = (PROVIDERS["signalwire"].api_base.format(space=space) if signalwire and space
                       else TWILIO_API_HOST)
        settings = cls(
            instance_path=instance_path,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'peerline.db'}",
            redis_url=env.get("REDIS_URL", ""),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            twilio_account_sid=(signalwire and env.get("SIGNALWIRE_PROJECT_ID")) or env.get("TWILIO_ACCOUNT_SID")
            or cls.twilio_account_sid,
            twilio_auth_token=(signalwire and env.get("SIGNALWIRE_API_TOKEN")) or env.get("TWILIO_AUTH_TOKEN", ""),
            # The default is Twilio's magic test number (valid with Twilio's test credentials and on
            # the phone network); no other provider has it, so there the line's number must be set.
            twilio_phone_number=env.get("TWILIO_PHONE_NUMBER") or ("" if signalwire else cls.twilio_phone_number),
            twilio_api_base_url=(env.get("TWILIO_API_BASE_URL") or default_api).rstrip("/"),
            telephony_provider=provider,
            signing_key=env.get("SIGNALWIRE_SIGNING_KEY", "") if signalwire else "",
            metrics_token=env.get("METRICS_TOKEN", ""),
            vosk_model_path=env.get("VOSK_MODEL_PATH", ""),
            vosk_model_path_en=env.get("VOSK_MODEL_PATH_EN", ""),
            vosk_model_path_es=env.get("VOSK_MODEL_PATH_ES", ""),
            secret_key=env.get("PEERLINE_SECRET_KEY", ""),
            data_key=env.get("PEERLINE_DATA_KEY", ""),
            lookup_key=env.get("PEERLINE_LOOKUP_KEY", ""),
            crisis_number=env.get("CRISIS_NUMBER") or "988",
            supervisor_number=env.get("SUPERVISOR_NUMBER", ""),
            delete_provider_recordings=env.get("DELETE_PROVIDER_RECORDINGS", "1") not in ("0", "false", "no"),
            peer_wrapup_seconds=number("PEER_WRAPUP_SECONDS", 120),
            peer_break_after_calls=number("PEER_BREAK_AFTER_CALLS", 0),
            peers_ring_at_once=number("PEERS_RING_AT_ONCE", 2, minimum=1),
            peer_missed_offers_break=number("PEER_MISSED_OFFERS_BREAK", 3),
            retention_days_voicemail=number("RETENTION_DAYS_VOICEMAIL", 90, minimum=1),
            retention_days_calls=number("RETENTION_DAYS_CALLS", 365, minimum=1),
            line_timezone=env.get("LINE_TIMEZONE") or cls.line_timezone,
            callback_windows=env.get("CALLBACK_WINDOWS") or cls.callback_windows,
            callback_now_hours=number("CALLBACK_NOW_HOURS", 4, minimum=1),
            callback_max_attempts=number("CALLBACK_MAX_ATTEMPTS", 3, minimum=1),
            callback_retry_schedule=env.get("CALLBACK_RETRY_SCHEDULE") or cls.callback_retry_schedule,
            callback_max_concurrent=number("CALLBACK_MAX_CONCURRENT", 2, minimum=1),
            service_level_seconds=number("SERVICE_LEVEL_SECONDS", 30, minimum=1),
            service_level_target=number("SERVICE_LEVEL_TARGET", 80, minimum=1),
            caller_survey=env.get("CALLER_SURVEY", "0") in ("1", "true", "yes", "on"),
            research_key=env.get("RESEARCH_KEY", ""),
            supervisor_answer_seconds=number("SUPERVISOR_ANSWER_SECONDS", 25, minimum=5),
            crisis_answer_seconds=number("CRISIS_ANSWER_SECONDS", 45, minimum=5),
            monitor_notice=(env.get("MONITOR_NOTICE") or cls.monitor_notice).strip().lower(),
            trusted_proxies=number("PEERLINE_TRUSTED_PROXIES", 0),
        )
        if problems:
            raise SettingsError(problems)
        return settings

    def check(self) -> Settings:
        """Parse every structured setting now; raise :class:`SettingsError` listing each problem."""
        problems: list[str] = []
        for parse in (lambda: self.zone, lambda: self.windows, lambda: self.retry_waits):
            try:
                parse()
            except SettingsError as exc:
                problems.extend(exc.problems)
        if self.research_key and self.research_key in self.data_key.split(","):
            problems.append("RESEARCH_KEY must not be the data key: research pseudonyms would join the database again")
        if self.service_level_target > 99:
            problems.append(f"SERVICE_LEVEL_TARGET: {self.service_level_target} must be a percent below 100")
        if self.monitor_notice not in MONITOR_NOTICES:
            problems.append(f"MONITOR_NOTICE: {self.monitor_notice!r} must be one of {', '.join(MONITOR_NOTICES)}")
        if not self.public_base_url.startswith(("http://", "https://")):
            problems.append(f"PUBLIC_BASE_URL: {self.public_base_url!r} must start with http:// or https://")
        if not 0 <= self.trusted_proxies <= MAX_TRUSTED_PROXIES:
            problems.append(f"PEERLINE_TRUSTED_PROXIES: {self.trusted_proxies} must be the number of reverse proxies "
                            f"in front of the web servers, 0 to {MAX_TRUSTED_PROXIES}")
        problems.extend(self.provider_problems())
        if problems:
            raise SettingsError(problems)
        return self

    def provider_problems(self) -> list[str]:
        """What keeps TELEPHONY_PROVIDER and its credentials from working, one line per variable."""
        if self.telephony_provider not in PROVIDERS:
            return [f"TELEPHONY_PROVIDER: {self.telephony_provider!r} is not one of {', '.join(PROVIDERS)}"]
        if self.telephony_provider != "signalwire":
            return []
        problems = []
        if self.twilio_auth_token and not self.signing_key:
            # Without it every webhook would be refused (or, worse, checked against the wrong key).
            problems.append("SIGNALWIRE_SIGNING_KEY: required with TELEPHONY_PROVIDER=signalwire (the project's "
                            "signing key, under API credentials in the SignalWire dashboard)")
        if self.twilio_api_base_url == TWILIO_API_HOST:
            problems.append("SIGNALWIRE_SPACE_URL: required with TELEPHONY_PROVIDER=signalwire "
                            "(e.g. example.signalwire.com), or set TWILIO_API_BASE_URL")
        if not self.twilio_phone_number:
            # Every call and text goes out from it, and Twilio's test number is no SignalWire project's number.
            problems.append("TWILIO_PHONE_NUMBER: required with TELEPHONY_PROVIDER=signalwire (the line's "
                            "SignalWire number in E.164 form, e.g. +15551234567)")
        return problems

    @property
    def provider(self) -> Provider:
        """The telephony provider (TELEPHONY_PROVIDER); Twilio when the name is unknown (check() refuses it)."""
        return PROVIDERS.get(self.telephony_provider, PROVIDERS["twilio"])

    @property
    def webhook_signing_key(self) -> str:
        """The key webhooks are signed with: SignalWire's signing key, or Twilio's auth token; empty = no check."""
        if self.telephony_provider == "signalwire":
            # Never unchecked because a key is missing: check() refuses that start anyway.
            return self.signing_key or self.twilio_auth_token
        return self.twilio_auth_token

    @cached_property
    def zone(self) -> ZoneInfo:
        """The line's IANA time zone (LINE_TIMEZONE)."""
        return parse_zone(self.line_timezone)

    @cached_property
    def windows(self) -> dict[str, tuple[int, int]]:
        """The callback windows (CALLBACK_WINDOWS) as local start and end hours."""
        return parse_windows(self.callback_windows)

    @cached_property
    def retry_waits(self) -> list[timedelta]:
        """The waits between callback attempts (CALLBACK_RETRY_SCHEDULE)."""
        return parse_schedule(self.callback_retry_schedule)

    def model_path_for(self, language: str | None) -> str:
        """The speech model for a language: VOSK_MODEL_PATH_<LANG>, else VOSK_MODEL_PATH ('' for none)."""
        own = {"en": self.vosk_model_path_en, "es": self.vosk_model_path_es}.get((language or "en").lower()[:2], "")
        return own or self.vosk_model_path

    def replace(self, **changes: object) -> Settings:
        """Copy with some values changed (tests use this through ``test_config``)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)


def ensure_key_file(path: Path, make_key: Callable[[], str]) -> str:
    """Read a key from ``path``, creating it (mode 600) with ``make_key()`` if missing."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = make_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
