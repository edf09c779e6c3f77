"""Settings from the environment. Every secret and connection string is read here, once."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Mapping

TWILIO_API_HOST = "https://api.twilio.com"


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
    extra: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, instance_path: Path, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from environment variables (``os.environ`` by default)."""
        env = os.environ if env is None else env
        instance_path = Path(instance_path)
        return cls(
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
            peer_wrapup_seconds=int(env.get("PEER_WRAPUP_SECONDS") or 120),
            peer_break_after_calls=int(env.get("PEER_BREAK_AFTER_CALLS") or 0),
            peers_ring_at_once=max(1, int(env.get("PEERS_RING_AT_ONCE") or 2)),
            retention_days_voicemail=int(env.get("RETENTION_DAYS_VOICEMAIL") or 90),
            retention_days_calls=int(env.get("RETENTION_DAYS_CALLS") or 365),
            line_timezone=env.get("LINE_TIMEZONE") or cls.line_timezone,
            callback_windows=env.get("CALLBACK_WINDOWS") or cls.callback_windows,
            callback_now_hours=int(env.get("CALLBACK_NOW_HOURS") or 4),
            callback_max_attempts=max(1, int(env.get("CALLBACK_MAX_ATTEMPTS") or 3)),
            callback_retry_schedule=env.get("CALLBACK_RETRY_SCHEDULE") or cls.callback_retry_schedule,
            callback_max_concurrent=max(1, int(env.get("CALLBACK_MAX_CONCURRENT") or 2)),
        )

    def replace(self, **changes: object) -> Settings:
        """Copy with some values changed (tests use this through ``test_config``)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Settings(**values)  # type: ignore[arg-type]


def ensure_key_file(path: Path, make_key) -> str:  # type: ignore[no-untyped-def]
    """Read a key from ``path``, creating it (mode 600) with ``make_key()`` if missing."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = make_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    return key
