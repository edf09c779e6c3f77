"""GET /healthz: the state of the database, Redis, workers and the speech model, as JSON."""
from __future__ import annotations

import time

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from callflows.settings import SPEECH_LANGUAGES, Settings
from ivr.services import services
from models import Voicemail
from transcription.modelpath import model_state

bp = Blueprint("health", __name__)


SLOW_MS = 1000  # a database that takes longer than this to answer is reported slow
LOCK_PROBE_MS = 250


def database_state(engine: Engine) -> tuple[str, int]:
    """'ok', 'slow', 'locked' or 'error: ...' for the database, and how long the probe took (ms).

    Beyond a read, the probe asks for the write lock a webhook would need (without waiting
    more than a moment), because a locked database answers reads and still fails every call.
    """
    start = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            if engine.dialect.name == "sqlite":
                previous = conn.exec_driver_sql("PRAGMA busy_timeout").scalar()
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {LOCK_PROBE_MS}")
                try:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                    conn.exec_driver_sql("ROLLBACK")
                finally:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(previous or 0)}")
            elif engine.dialect.name == "postgresql":
                try:  # inside the transaction the SELECT began; rolled back, so nothing is held
                    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_PROBE_MS}ms'")
                    conn.exec_driver_sql("LOCK TABLE calls IN ROW EXCLUSIVE MODE")
                finally:
                    conn.rollback()
    except OperationalError as exc:
        elapsed = int((time.perf_counter() - start) * 1000)
        message = str(exc.orig).lower()
        if "locked" in message or "lock timeout" in message:
            return "locked", elapsed
        return f"error: {type(exc).__name__}", elapsed
    except SQLAlchemyError as exc:
        return f"error: {type(exc).__name__}", int((time.perf_counter() - start) * 1000)
    elapsed = int((time.perf_counter() - start) * 1000)
    return ("slow" if elapsed > SLOW_MS else "ok"), elapsed


def speech_model_states(settings: Settings) -> dict[str, str]:
    """Per language: 'ready', 'demo' (a model of another language: no real transcript),
    'missing' (configured, not there) or 'none' (not configured: its voicemails wait)."""
    return {language: model_state(settings.model_path_for(language), language) for language in SPEECH_LANGUAGES}


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Report each dependency; 503 when the database or Redis is down."""
    svc = services()
    report: dict[str, object] = {}
    report["database"], report["database_ms"] = database_state(svc.engine)
    try:
        svc.redis.ping()
        report["redis"] = "ok"
        report["workers"] = Worker.count(connection=svc.redis)
    except (RedisError, OSError) as exc:
        report["redis"] = f"error: {type(exc).__name__}"
        report["workers"] = None
    report["speech_model"] = speech_model_states(svc.settings)
    if report["database"] == "ok":
        # Voicemails wait as pending while the speech model is missing: show how many.
        try:
            with svc.sessions() as session:
                counts = dict(session.execute(
                    select(Voicemail.status, func.count()).where(Voicemail.status.in_(("pending", "failed")))
                    .group_by(Voicemail.status)).all())
        except SQLAlchemyError:
            counts = {}
        report["voicemails_pending"] = counts.get("pending", 0)
        report["voicemails_failed"] = counts.get("failed", 0)
    healthy = report["database"] == "ok" and report["redis"] == "ok"
    report["status"] = "ok" if healthy else "degraded"
    return jsonify(report), 200 if healthy else 503
