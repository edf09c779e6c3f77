"""GET /healthz: the state of the database, Redis, workers and the speech model, as JSON."""
from __future__ import annotations

from pathlib import Path

from flask import Blueprint, jsonify
from flask.typing import ResponseReturnValue
from redis.exceptions import RedisError
from rq import Worker
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from ivr.services import services
from models import Voicemail

bp = Blueprint("health", __name__)


def speech_model_state(path: str) -> str:
    """'ready', 'not configured' or 'missing' for a Vosk model path."""
    if not path:
        return "not configured"
    return "ready" if (Path(path) / "am").is_dir() or (Path(path) / "conf").is_dir() else "missing"


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    """Report each dependency; 503 when the database or Redis is down."""
    svc = services()
    report: dict[str, object] = {}
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        report["database"] = "ok"
    except SQLAlchemyError as exc:
        report["database"] = f"error: {type(exc).__name__}"
    try:
        svc.redis.ping()
        report["redis"] = "ok"
        report["workers"] = Worker.count(connection=svc.redis)
    except (RedisError, OSError) as exc:
        report["redis"] = f"error: {type(exc).__name__}"
        report["workers"] = None
    report["speech_model"] = speech_model_state(svc.settings.vosk_model_path)
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
