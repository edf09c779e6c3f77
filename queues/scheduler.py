"""Enqueueing jobs: stable ids (a repeated enqueue never runs a job twice at once), explicit
connections, job functions passed as objects. :class:`RqJobs` is the RQ side of the rules'
:class:`~callflows.scheduling.Jobs` protocol.

Dialling itself is guarded in the database (a callback is claimed with one conditional
UPDATE before any call), so a job that runs twice never dials twice. Scheduling relies on
RQ's own scheduler (``Worker.work(with_scheduler=True)``, started by ``peerline worker``).
"""
from __future__ import annotations

from datetime import datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import Retry
from rq.registry import FailedJobRegistry

from callflows.errors import SchedulingError
from models import utcnow
from queues import jobs
from queues.connection import CALLBACK_QUEUE, DEFAULT_QUEUE, TRANSCRIPTION_QUEUE, job_is_live, queue


# The small jobs the rules schedule are tried again after an error, and at once when their
# worker died (:func:`queues.reconcile.recover_abandoned_jobs`); each of them is idempotent.
def short_retry() -> Retry:
    """The retries of the small jobs the rules schedule (wrap-up ends, dispatch, callbacks due)."""
    return Retry(max=3, interval=[10, 60])


def transcription_job_id(voicemail_id: int) -> str:
    """The RQ job id for a voicemail's transcription."""
    return f"transcribe-voicemail-{voicemail_id}"


def due_job_id(callback_id: int, attempts: int) -> str:
    """The RQ job id that wakes dispatch for one try of a callback."""
    return f"callback-due-{callback_id}-{attempts}"


def enqueue_transcription(connection: Redis, voicemail_id: int) -> str:
    """Enqueue the transcription of a voicemail (by id) on the transcription queue."""
    q = queue(TRANSCRIPTION_QUEUE, connection)
    # The job keeps a fixed id: take a dead run out of the failed list before enqueueing again.
    FailedJobRegistry(queue=q).remove(transcription_job_id(voicemail_id))
    job = q.enqueue(
        jobs.transcribe_voicemail,
        voicemail_id,
        job_id=transcription_job_id(voicemail_id),
        retry=Retry(max=3, interval=[10, 60, 300]),
        job_timeout=900,
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )
    return job.id


def whole_second_from(when: datetime) -> datetime:
    """``when`` rounded up to a whole second.

    RQ's scheduler keeps whole seconds and drops the fraction: a job scheduled at 12:00:00.7
    runs at 12:00:00, before its time. Rounded up, it runs at most a second late, never early.
    """
    return when if when.microsecond == 0 else when.replace(microsecond=0) + timedelta(seconds=1)


def schedule_due(connection: Redis, callback_id: int, attempts: int, due_at: datetime | None) -> str:
    """Enqueue (now, or at ``due_at``) the job that offers this callback; no-op if it is already waiting."""
    job_id = due_job_id(callback_id, attempts)
    if job_is_live(connection, job_id):
        return job_id
    q = queue(CALLBACK_QUEUE, connection)
    options = {"job_id": job_id, "result_ttl": 86400, "failure_ttl": 7 * 86400, "job_timeout": 120,
               "retry": short_retry()}
    if due_at is not None and due_at > utcnow():
        q.enqueue_at(whole_second_from(due_at), jobs.callback_due, callback_id, **options)
    else:
        q.enqueue(jobs.callback_due, callback_id, **options)
    return job_id


class RqJobs:
    """The rules' background work, on RQ (see :class:`callflows.scheduling.Jobs`)."""

    def __init__(self, connection: Redis) -> None:
        self.connection = connection

    def wrap_up_ends(self, peer_id: int, started: float, after: timedelta) -> None:
        """Free the peer when this wrap-up is over (a later wrap-up has its own job id)."""
        try:
            queue(DEFAULT_QUEUE, self.connection).enqueue_in(
                after, jobs.wrap_up_done, peer_id, started, job_id=f"wrap-up-{peer_id}-{int(started * 1000)}",
                retry=short_retry())
        except (RedisError, OSError) as exc:
            raise SchedulingError(f"wrap-up end of peer {peer_id}: {exc}") from exc

    def dispatch_soon(self, after: timedelta) -> None:
        """Offer free peers to the line after ``after``."""
        try:
            queue(DEFAULT_QUEUE, self.connection).enqueue_in(after, jobs.dispatch_line, retry=short_retry())
        except (RedisError, OSError) as exc:
            raise SchedulingError(f"dispatch: {exc}") from exc

    def callback_due(self, callback_id: int, attempts: int, due_at: datetime | None) -> None:
        """Offer the callback when it falls due."""
        try:
            schedule_due(self.connection, callback_id, attempts, due_at)
        except (RedisError, OSError) as exc:
            raise SchedulingError(f"callback {callback_id}: {exc}") from exc

    def transcribe(self, voicemail_id: int) -> str:
        """Transcribe a voicemail in the background; returns the job id."""
        try:
            return enqueue_transcription(self.connection, voicemail_id)
        except (RedisError, OSError) as exc:
            raise SchedulingError(f"transcription of voicemail {voicemail_id}: {exc}") from exc
