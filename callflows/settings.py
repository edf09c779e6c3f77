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
WINDOW_CHOICES = ("now", "morning", "afternoon", "evening")
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
    vosk_model_path: str = ""
    secret_key: str = ""
    data_key: str = ""
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
    # Callbacks: windows are local hours in the line's IANA time zone (start-end, end may pass midnight).
    line_timezone: str = "America/New_York"
    callback_windows: str = "morning=9-12,afternoon=12-17,evening=17-21"
    callback_now_hours: int = 4  # how long a "now" callback stays open
    callback_max_attempts: int = 3
    callback_retry_schedule: str = "10m,1h"
    callback_max_concurrent: int = 2  # outbound callback attempts in progress at once
    # In-call help (callflows.escalation): how long the supervisor's and the crisis line's phones
    # ring, and what a peer hears when a supervisor or trainee starts listening (whisper, tone, none).
    supervisor_answer_seconds: int = 25
    crisis_answer_seconds: int = 45
    monitor_notice: str = "whisper"
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

        settings = cls(
            instance_path=instance_path,
            database_url=env.get("DATABASE_URL") or f"sqlite:///{instance_path / 'peerline.db'}",
            redis_url=env.get("REDIS_URL", ""),
            public_base_url=(env.get("PUBLIC_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or cls.twilio_account_sid,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN", ""),
            twilio_phone_number=env.get("TWILIO_PHONE_NUMBER") or cls.twilio_phone_number,
            twilio_api_base_url=(env.get("TWILIO_API_BASE_URL") or TWILIO_API_HOST).rstrip("/"),
            vosk_model_path=env.get("VOSK_MODEL_PATH", ""),
            secret_key=env.get("PEERLINE_SECRET_KEY", ""),
            data_key=env.get("PEERLINE_DATA_KEY", ""),
            crisis_number=env.get("CRISIS_NUMBER") or "988",
            supervisor_number=env.get("SUPERVISOR_NUMBER", ""),
            delete_provider_recordings=env.get("DELETE_PROVIDER_RECORDINGS", "1") not in ("0", "false", "no"),
            peer_wrapup_seconds=number("PEER_WRAPUP_SECONDS", 120),
            peer_break_after_calls=number("PEER_BREAK_AFTER_CALLS", 0),
            peers_ring_at_once=number("PEERS_RING_AT_ONCE", 2, minimum=1),
            retention_days_voicemail=number("RETENTION_DAYS_VOICEMAIL", 90, minimum=1),
            retention_days_calls=number("RETENTION_DAYS_CALLS", 365, minimum=1),
            line_timezone=env.get("LINE_TIMEZONE") or cls.line_timezone,
            callback_windows=env.get("CALLBACK_WINDOWS") or cls.callback_windows,
            callback_now_hours=number("CALLBACK_NOW_HOURS", 4, minimum=1),
            callback_max_attempts=number("CALLBACK_MAX_ATTEMPTS", 3, minimum=1),
            callback_retry_schedule=env.get("CALLBACK_RETRY_SCHEDULE") or cls.callback_retry_schedule,
            callback_max_concurrent=number("CALLBACK_MAX_CONCURRENT", 2, minimum=1),
            supervisor_answer_seconds=number("SUPERVISOR_ANSWER_SECONDS", 25, minimum=5),
            crisis_answer_seconds=number("CRISIS_ANSWER_SECONDS", 45, minimum=5),
            monitor_notice=(env.get("MONITOR_NOTICE") or cls.monitor_notice).strip().lower(),
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
        if self.monitor_notice not in MONITOR_NOTICES:
            problems.append(f"MONITOR_NOTICE: {self.monitor_notice!r} must be one of {', '.join(MONITOR_NOTICES)}")
        if not self.public_base_url.startswith(("http://", "https://")):
            problems.append(f"PUBLIC_BASE_URL: {self.public_base_url!r} must start with http:// or https://")
        if problems:
            raise SettingsError(problems)
        return self

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
