"""Faults a caller must not notice: a locked or hung database, a hung Redis.

The database is locked the way it happens in production: another connection holds the
write lock (SQLite) or an exclusive lock on every table the line uses (PostgreSQL).
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator

import psycopg

from ivr.services import services
from models import Base
from models.session import normalize_url
from tests.helpers import statements_run


@contextmanager
def locked_database(database_url: str) -> Iterator[None]:
    """Hold the database's locks from another connection until the block ends."""
    if database_url.startswith("sqlite"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    url = normalize_url(database_url).replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as pg:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        pg.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            pg.rollback()


def test_healthz_reports_a_locked_database(client: Any, database_url: str) -> None:
    assert client.get("/healthz").get_json()["database"] == "ok"
    with locked_database(database_url), statements_run(services(client.application).engine) as ran:
        response = client.get("/healthz")
    report = response.get_json()
    assert (response.status_code, report["database"], report["status"]) == (503, "locked", "degraded")
    # The probe does not wait out the lock: it shortens its wait before asking for the write lock.
    short_wait, lock = (("PRAGMA busy_timeout = 250", "BEGIN IMMEDIATE") if database_url.startswith("sqlite")
                        else ("SET LOCAL lock_timeout = '250ms'", "LOCK TABLE calls IN ROW EXCLUSIVE MODE"))
    assert ran.index(short_wait) < ran.index(lock)
    assert client.get("/healthz").get_json()["database"] == "ok"
