"""Settings are checked when a process starts: a typo stops `peerline serve` and `peerline worker`
with a message naming the variable, instead of failing a caller in the middle of a call."""
from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from callflows.errors import SettingsError
from callflows.settings import Settings
from ivr import create_app

PEERLINE = Path(sys.executable).parent / "peerline"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CALLBACK_WINDOWS", "morning=9-12,afternoon=12-17", "CALLBACK_WINDOWS: missing evening"),
    ("CALLBACK_WINDOWS", "morning=9to12,afternoon=12-17,evening=17-21",
     "CALLBACK_WINDOWS: cannot read 'morning=9to12' (want name=start-end, hours 0-24)"),
    ("CALLBACK_RETRY_SCHEDULE", "10m,1day", "CALLBACK_RETRY_SCHEDULE: cannot read '1day' (want e.g. 10m or 1h)"),
    ("LINE_TIMEZONE", "America/Springfield",
     "LINE_TIMEZONE: 'America/Springfield' is not an IANA time zone (e.g. America/New_York)"),
    ("PEERS_RING_AT_ONCE", "two", "PEERS_RING_AT_ONCE: 'two' is not a whole number"),
    ("CALLBACK_MAX_ATTEMPTS", "0", "CALLBACK_MAX_ATTEMPTS: 0 is below the minimum of 1"),
    ("SERVICE_LEVEL_SECONDS", "half a minute", "SERVICE_LEVEL_SECONDS: 'half a minute' is not a whole number"),
    ("SERVICE_LEVEL_TARGET", "100", "SERVICE_LEVEL_TARGET: 100 must be a percent below 100"),
])
def test_a_bad_setting_is_named_when_the_settings_are_read(tmp_path: Path, name: str, value: str,
                                                           message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(tmp_path, {name: value}).check()
    assert caught.value.problems == [message]


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, {"CALLBACK_WINDOWS": "lunch=12-13", "LINE_TIMEZONE": "Nowhere/Land",
                                            "CALLBACK_RETRY_SCHEDULE": "soon"})
    with pytest.raises(SettingsError) as caught:
        settings.check()
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "LINE_TIMEZONE", "CALLBACK_WINDOWS", "CALLBACK_RETRY_SCHEDULE"]


def test_good_settings_are_parsed_once_for_the_calls(tmp_path: Path) -> None:
    settings = Settings.from_env(tmp_path, {"CALLBACK_WINDOWS": "morning=8-11,afternoon=13-16,evening=20-1",
                                            "CALLBACK_RETRY_SCHEDULE": "5m,30m,2h",
                                            "LINE_TIMEZONE": "America/Los_Angeles"}).check()
    assert settings.windows == {"morning": (8, 11), "afternoon": (13, 16), "evening": (20, 1)}
    assert settings.retry_waits == [timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2)]
    assert settings.zone.key == "America/Los_Angeles"


def test_the_app_refuses_to_start_with_a_bad_window(app_config: dict[str, object]) -> None:
    app_config["callback_windows"] = "morning=9-12"
    with pytest.raises(SettingsError, match="CALLBACK_WINDOWS: missing afternoon, evening"):
        create_app(app_config)


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_serve_and_worker_refuse_to_start_with_a_clear_message(tmp_path: Path, command: str) -> None:
    env = dict(os.environ, PEERLINE_INSTANCE_PATH=str(tmp_path), CALLBACK_WINDOWS="morning=9-12,evening=25-3",
               LINE_TIMEZONE="Europe/Atlantis", REDIS_URL="redis://127.0.0.1:1/0")
    done = subprocess.run([str(PEERLINE), command], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        "Error: cannot start with these settings:",
        "  LINE_TIMEZONE: 'Europe/Atlantis' is not an IANA time zone (e.g. America/New_York)",
        "  CALLBACK_WINDOWS: cannot read 'evening=25-3' (want name=start-end, hours 0-24)",
    ]
    assert "Traceback" not in done.stdout + done.stderr


def test_the_research_key_cannot_be_the_data_key(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(tmp_path, {"PEERLINE_DATA_KEY": "k1,k2", "RESEARCH_KEY": "k2"}).check()
    assert caught.value.problems == [
        "RESEARCH_KEY must not be the data key: research pseudonyms would join the database again"]
    settings = Settings.from_env(tmp_path, {"RESEARCH_KEY": "apart", "CALLER_SURVEY": "1"}).check()
    assert (settings.research_key, settings.caller_survey, settings.service_level_seconds) == ("apart", True, 30)
