"""``peerline call`` (the caller simulator) and ``peerline phone-network`` (the local Twilio stand-in).

Both run without building the app: the simulator only speaks HTTP to the app (signed like
Twilio) and to the phone network.
"""
from __future__ import annotations

import logging
import os
import secrets
import select
import sys
import time
from pathlib import Path

import click
from werkzeug.serving import run_simple

from simulator.engine import (
    Answer,
    HangUp,
    HttpTransport,
    HubClient,
    Leg,
    ScriptActor,
    new_call_sid,
    parse_answer,
    wav_seconds,
)
from simulator.errors import SimulatorError
from simulator.network_state import PEER_MODES, SIGNATURE_HEADERS, NetworkState
from simulator.phone_network import create_phone_network

DEFAULT_APP_URL = "http://127.0.0.1:5000"
DEFAULT_NETWORK_URL = "http://127.0.0.1:5001"
TWILIO_HOST = "https://api.twilio.com"
PROVIDERS = tuple(SIGNATURE_HEADERS)  # twilio, signalwire


def find_token(instance: Path | None = None) -> str | None:
    """The auth token to sign with: TWILIO_AUTH_TOKEN, else the dev token ``peerline up`` wrote."""
    token = os.environ.get("TWILIO_AUTH_TOKEN")
    if token:
        return token
    folder = instance or Path(os.environ.get("PEERLINE_INSTANCE_PATH") or Path.cwd() / "instance")
    path = folder / "twilio-dev.token"
    if path.exists():
        return path.read_text().strip()
    return None


def fictional_number() -> str:
    """A new fictional caller's number: 555-0100 to 555-0199 (kept for fiction) in a random area code."""
    # The area code varies so that each run is a new caller; its first digit is 2-9 as in real ones.
    return f"+1{2 + secrets.randbelow(8)}{secrets.randbelow(100):02d}55501{secrets.randbelow(100):02d}"


def read_wav(path: Path) -> bytes:
    """The bytes of a WAV file to leave as a message; a clear error when the file is not a WAV."""
    audio = path.read_bytes()
    if wav_seconds(audio) <= 0:
        raise click.ClickException(
            f"{path} is not a WAV file with sound in it (the phone network plays WAV audio only). Make one with "
            f'espeak-ng -w message.wav "Hello, please call me back", or convert a recording with '
            f"sox INPUT message.wav")
    return audio


class TerminalActor:
    """A person at the terminal: types keys or words for each menu, Enter for silence."""

    def __init__(self, record_audio: bytes | None = None) -> None:
        self.audio = record_audio

    def gather(self, heard: str, input_types: str, on_hold: bool) -> Answer | None:
        """Read one answer from the terminal."""
        try:
            typed = input("your answer (keys, words, Enter = nothing, /hangup) > ")
        except (EOFError, KeyboardInterrupt):
            raise HangUp(by="caller") from None
        if typed.strip() == "/hangup":
            raise HangUp(by="caller")
        return parse_answer(typed)

    def record(self) -> bytes | None:
        """The --record file, else ask for a WAV file to play into the phone."""
        if self.audio is not None:
            audio, self.audio = self.audio, None
            return audio
        try:
            typed = input("WAV file to say as your message (Enter = say nothing) > ").strip()
        except (EOFError, KeyboardInterrupt):
            raise HangUp(by="caller") from None
        if not typed:
            return None
        try:
            return read_wav(Path(typed).expanduser())
        except OSError as exc:
            click.echo(f"  cannot read {typed}: {exc}; recording nothing")
            return None
        except click.ClickException as exc:
            click.echo(f"  {exc.message}; recording nothing")
            return None

    def stay(self, what: str, seconds: float) -> bool:
        """Wait; pressing Enter hangs up (Ctrl-C too)."""
        if not sys.stdin.isatty():
            # Answers piped in are for the menus: a line waiting in the pipe (or already in
            # input()'s buffer, where select cannot see it) is the next menu's answer, not Enter.
            time.sleep(seconds)
            return True
        try:
            ready, _, _ = select.select([sys.stdin], [], [], seconds)
        except KeyboardInterrupt:
            return False
        except (OSError, ValueError):  # stdin is not selectable (not a terminal): just wait
            return True
        if ready:
            sys.stdin.readline()
            return False
        return True


@click.command("call")
@click.option("--script", default=None, help='Answers for each menu, e.g. "1,*,2" or "1,talk to someone"; '
              "empty item = silence. When it runs out you hang up (or stay on hold, or talk --talk-seconds).")
@click.option("--record", "record_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="WAV file to leave as a voicemail at the recording tone.")
@click.option("--peer-answers", type=click.Choice(PEER_MODES), default=None,
              help="Tell the phone network how peers' phones answer from now on.")
@click.option("--peer-keys", default=None,
              help='Keys the next peer who accepts presses during the call, e.g. "*,1" (star opens their '
                   "in-call menu, 1 adds the crisis line; hangup ends the conversation from the peer's side).")
@click.option("--from", "from_", default=None,
              help="The caller's number. Default: a new caller each run (a fictional 555-01xx number: 555-0100 "
                   "to 555-0199 in a random area code), so a "
                   "script always starts at the language question; give a number to call again as the same caller.")
@click.option("--to", default=None, help="The line's number (TWILIO_PHONE_NUMBER, else +15005550006).")
@click.option("--url", "app_url", default=None, help="Where the app listens (PUBLIC_BASE_URL, else "
              f"{DEFAULT_APP_URL}).")
@click.option("--public-url", default=None, help="The URL Twilio signs (PUBLIC_BASE_URL, else --url).")
@click.option("--token", default=None, help="Auth token to sign with (TWILIO_AUTH_TOKEN, else "
              "<instance>/twilio-dev.token).")
@click.option("--network", "network_url", default=None, help="The phone network (TWILIO_API_BASE_URL, else "
              f"{DEFAULT_NETWORK_URL}).")
@click.option("--pace", default=0.0, show_default=True, type=float,
              help="Seconds of waiting per second of speech (1 = real time).")
@click.option("--talk-seconds", default=3.0, show_default=True, type=float,
              help="With --script: how long you stay once connected to a peer.")
@click.option("--hold-seconds", default=120.0, show_default=True, type=float,
              help="With --script: how long you stay on hold before hanging up.")
@click.option("--max-seconds", default=600.0, show_default=True, type=float, help="End the call after this long.")
@click.option("--no-status-callback", is_flag=True, help="Do not post /voice/status when the call ends.")
@click.option("--provider", type=click.Choice(PROVIDERS), default="twilio", envvar="TELEPHONY_PROVIDER",
              show_default=True, help="Behave like this provider: signalwire signs with SIGNALWIRE_SIGNING_KEY "
              "in X-SignalWire-Signature and gives calls UUID ids.")
def call_command(script: str | None, record_file: Path | None, peer_answers: str | None, peer_keys: str | None,
                 from_: str | None,
                 to: str | None,
                 app_url: str | None, public_url: str | None, token: str | None, network_url: str | None,
                 pace: float, talk_seconds: float, hold_seconds: float, max_seconds: float,
                 no_status_callback: bool, provider: str = "twilio") -> None:
    """Call the line from the terminal and hear what a caller hears (Twilio's side, simulated)."""
    app_url = (app_url or os.environ.get("PUBLIC_BASE_URL") or DEFAULT_APP_URL).rstrip("/")
    public_url = (public_url or os.environ.get("PUBLIC_BASE_URL") or app_url).rstrip("/")
    if token is None and provider == "signalwire":
        token = os.environ.get("SIGNALWIRE_SIGNING_KEY") or None
    token = token if token is not None else find_token()
    if token is None:
        raise click.ClickException("no auth token: set TWILIO_AUTH_TOKEN, pass --token, or start the line with "
                                   "`peerline up` (it writes instance/twilio-dev.token)")
    network_url = (network_url or os.environ.get("TWILIO_API_BASE_URL") or DEFAULT_NETWORK_URL).rstrip("/")
    to = to or os.environ.get("TWILIO_PHONE_NUMBER") or "+15005550006"
    from_ = from_ or fictional_number()
    audio = read_wav(record_file) if record_file else None

    hub: HubClient | None = None
    call_sid = new_call_sid(provider)
    if not network_url.startswith(TWILIO_HOST):
        hub = HubClient(network_url)
        try:
            if peer_answers:
                hub.settings(peer_answers=peer_answers)
            hub.settings(talk_s=talk_seconds)  # a called-back caller talks as long as this caller would
            if peer_keys is not None:
                hub.settings(peer_keys=peer_keys)
            call_sid = hub.register(from_, to, call_sid)
            hub.state(call_sid)  # skip events from earlier calls
        except SimulatorError as exc:
            if peer_answers or peer_keys or audio:
                raise click.ClickException(str(exc)) from exc
            click.echo(f"(no phone network: {exc}; menus work, holding and peers do not)")
            hub = None
    actor = (ScriptActor([item for item in script.split(",")], audio, talk_s=talk_seconds, hold_s=hold_seconds)
             if script is not None else TerminalActor(audio))
    transport = HttpTransport({public_url: app_url} if public_url != app_url else None,
                              signature_header=SIGNATURE_HEADERS[provider])
    leg = Leg(transport, token, call_sid, from_, to, actor, hub=hub, network_url=network_url, out=click.echo,
              pace=pace, max_s=max_seconds, hold_min_s=1.0,
              status_callback=None if no_status_callback else f"{public_url}/voice/status")
    click.echo(f"Calling {to} at {public_url} from {from_} (call {call_sid}).")
    if script is None:
        click.echo("Type keys (1, *, 12#) or words at each menu; Enter says nothing; /hangup or Ctrl-D hangs up.")
    try:
        status = leg.run(f"{public_url}/voice/incoming")
    except SimulatorError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        transport.close()
        if hub is not None:
            hub.close()
    click.echo(f"Call ended ({status}).")


@click.command("phone-network")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5001, show_default=True, type=int)
@click.option("--peer-answers", type=click.Choice(PEER_MODES), default="accept", show_default=True,
              help="How every phone the line rings answers (peer_answers; `peerline call` can change it).")
@click.option("--ring-seconds", default=2.0, show_default=True, type=float, help="How long a phone rings.")
@click.option("--pace", default=0.5, show_default=True, type=float,
              help="Seconds of waiting per second of speech on the peers' phones.")
@click.option("--provider", type=click.Choice(PROVIDERS), default="twilio", envvar="TELEPHONY_PROVIDER",
              show_default=True, help="Behave like this provider (signalwire: UUID ids, REST under /api/laml, "
              "webhooks signed with --signing-key in X-SignalWire-Signature).")
@click.option("--signing-key", default=None, envvar="SIGNALWIRE_SIGNING_KEY",
              help="With --provider signalwire: the key the peers' legs sign with (else the REST password).")
@click.option("--talk-seconds", default=3.0, show_default=True, type=float,
              help="How long a called-back caller talks before hanging up (`peerline call` sets it too).")
def phone_network_command(host: str, port: int, peer_answers: str, ring_seconds: float, pace: float,
                          provider: str = "twilio", signing_key: str | None = None, talk_seconds: float = 3.0) -> None:
    """Run the local stand-in for Twilio's REST API that also rings the peers' phones."""
    logging.basicConfig(level=logging.INFO, format="phone-network: %(message)s")
    for noisy in ("werkzeug", "httpx"):  # one line per request drowns what the phones do
        logging.getLogger(noisy).setLevel(logging.WARNING)
    state = NetworkState(peer_answers=peer_answers, ring_s=ring_seconds, pace=pace, provider=provider,
                         signing_key=signing_key if provider == "signalwire" else None, talk_s=talk_seconds)
    click.echo(f"phone network on http://{host}:{port} (peers: {peer_answers})")
    run_simple(host, port, create_phone_network(state), threaded=True)


COMMANDS: list[click.Command] = [call_command, phone_network_command]
