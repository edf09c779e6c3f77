"""Engine and session factory construction, and Alembic upgrades, without Flask."""
from __future__ import annotations

import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Background work (purges, batches, migrations) may legitimately take longer than a webhook.
BACKGROUND_TIMEOUT_S = 300.0


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (SQLAlchemy would pick psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


# A webhook must answer Twilio within its 15 s timeout, with time to spare for the TwiML:
# no statement of a request may wait longer than this on a locked or hung database.
WEB_TIMEOUT_S = 3.0


def make_engine(url: str, timeout_s: float = WEB_TIMEOUT_S, **kwargs: object) -> Engine:
    """Create an engine whose connects, lock waits and statements give up after ``timeout_s``.

    SQLite gets foreign keys on, WAL, and a busy timeout; PostgreSQL a connect timeout, a
    statement timeout and a lock timeout, so a locked or hung database fails fast instead
    of holding a caller past Twilio's webhook timeout.
    """
    url = normalize_url(url)
    if url.startswith("sqlite"):
        kwargs.setdefault("connect_args", {"timeout": timeout_s})
        engine = create_engine(url, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

        return engine
    ping_when_idle = "pool_pre_ping" not in kwargs
    if url.startswith("postgresql"):
        ms = int(timeout_s * 1000)
        kwargs.setdefault("connect_args", {
            "connect_timeout": max(1, round(timeout_s)),
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms}",
        })
    engine = create_engine(url, **kwargs)
    if ping_when_idle:
        _ping_when_idle(engine, PING_AFTER_IDLE_S)
    return engine


# A pooled connection idle for longer than this is pinged before use (a database restart
# leaves dead ones behind); one used within this time is not, which saves a round trip on every
# webhook of a busy line. Should the database restart in the middle of traffic, the first
# statement on a dead connection fails (that webhook answers through its error path) and
# SQLAlchemy invalidates the whole pool, so the next requests get fresh connections.
PING_AFTER_IDLE_S = 1.0


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Ping a connection on checkout only when it sat in the pool for ``idle_s`` or more."""
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record):  # type: ignore[no-untyped-def]
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_conn, record, _proxy):  # type: ignore[no-untyped-def]
        since = record.info.pop("idle_since", None)
        if since is None or time.monotonic() - since < idle_s:
            return  # just connected, or in use a moment ago
        try:
            dialect.do_ping(dbapi_conn)
        except dialect.loaded_dbapi.Error as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("a pooled connection did not answer its ping") from exc


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to an engine; objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    """Alembic Config pointing at the packaged migrations and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "heads") -> None:
    """Run Alembic migrations up to ``revision`` (every branch head by default)."""
    command.upgrade(alembic_config(url), revision)
