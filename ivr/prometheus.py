"""GET /metrics: the line's gauges in Prometheus' text format, for a scraper holding METRICS_TOKEN.

Off (404) unless ``METRICS_TOKEN`` is set; a request without ``Authorization: Bearer <token>``
gets 401. Each gauge is read when scraped (queue lengths, failed jobs, workers, peers by status,
callers waiting, callbacks and voicemails by status); a part that is down is reported as
``peerline_up{part=...} 0`` and its gauges are left out, so the endpoint itself always answers.
"""
from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, request
from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from callflows import routing
from ivr.services import services
from models import CallbackRequest, Peer, Voicemail
from models.tables import PeerRequest
from queues.connection import ALL_QUEUES

bp = Blueprint("prometheus", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Sample = tuple[str, dict[str, str], float]


def authorized(token: str) -> bool:
    """True when the request carries ``Authorization: Bearer <token>`` (compared in constant time)."""
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def redis_samples(redis: Redis) -> list[Sample]:
    """RQ: jobs waiting, running, scheduled and failed per queue, and the workers."""
    samples: list[Sample] = []
    for name in ALL_QUEUES:
        queue = Queue(name, connection=redis)
        samples += [("peerline_rq_jobs", {"queue": name, "state": "queued"}, queue.count),
                    ("peerline_rq_jobs", {"queue": name, "state": "started"}, StartedJobRegistry(queue=queue).count),
                    ("peerline_rq_jobs", {"queue": name, "state": "scheduled"},
                     ScheduledJobRegistry(queue=queue).count),
                    ("peerline_rq_jobs", {"queue": name, "state": "failed"}, FailedJobRegistry(queue=queue).count)]
    samples.append(("peerline_rq_workers", {}, Worker.count(connection=redis)))
    return samples


def database_samples(session: Session) -> list[Sample]:
    """The line: peers by status, callers waiting for a peer, callbacks and voicemails by status."""
    samples: list[Sample] = []
    for table, column, metric in ((Peer, Peer.status, "peerline_peers"),
                                  (CallbackRequest, CallbackRequest.status, "peerline_callbacks"),
                                  (Voicemail, Voicemail.status, "peerline_voicemails")):
        for status, count in session.execute(select(column, func.count()).select_from(table).group_by(column)):
            samples.append((metric, {"status": str(status)}, count))
    waiting = session.scalar(select(func.count()).select_from(PeerRequest)
                             .where(PeerRequest.status.in_(routing.OPEN_REQUESTS)))
    samples.append(("peerline_callers_waiting", {}, waiting or 0))
    return samples


HELP = {
    "peerline_up": "1 when the part answers (database, redis).",
    "peerline_rq_jobs": "RQ jobs per queue and state (failed ones are on the staff failed-jobs page).",
    "peerline_rq_workers": "RQ workers registered in Redis.",
    "peerline_peers": "Peers by status.",
    "peerline_callbacks": "Callback requests by status.",
    "peerline_voicemails": "Voicemails by status (pending waits for transcription).",
    "peerline_callers_waiting": "Callers ringing peers or on hold now.",
}


def render(samples: list[Sample]) -> str:
    """Prometheus text exposition format (0.0.4): HELP and TYPE once per metric, then its samples."""
    lines: list[str] = []
    seen: set[str] = set()
    for name, labels, value in samples:
        if name not in seen:
            seen.add(name)
            lines += [f"# HELP {name} {HELP[name]}", f"# TYPE {name} gauge"]
        label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{label_text}}} {value:g}" if label_text else f"{name} {value:g}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


@bp.get("/metrics")
def metrics() -> Response:
    """The gauges, for a Prometheus scraper with the METRICS_TOKEN bearer token."""
    svc = services()
    token = svc.settings.metrics_token
    if not token:
        abort(404)
    if not authorized(token):
        return Response("metrics need Authorization: Bearer <METRICS_TOKEN>\n", 401,
                        {"WWW-Authenticate": 'Bearer realm="peerline metrics"', "Content-Type": "text/plain"})
    samples: list[Sample] = []
    try:
        redis_part = redis_samples(svc.redis)
        samples.append(("peerline_up", {"part": "redis"}, 1))
    except (RedisError, OSError):
        redis_part = []
        samples.append(("peerline_up", {"part": "redis"}, 0))
    try:
        with svc.sessions() as session:
            database_part = database_samples(session)
        samples.append(("peerline_up", {"part": "database"}, 1))
    except SQLAlchemyError:
        database_part = []
        samples.append(("peerline_up", {"part": "database"}, 0))
    return Response(render(samples + redis_part + database_part), 200, {"Content-Type": CONTENT_TYPE,
                                                                         "Cache-Control": "no-store"})
