"""Enqueueing jobs with stable ids, so a repeated enqueue never runs a job twice at once."""
from __future__ import annotations

from redis import Redis
from rq import Retry

from models import Voicemail, utcnow
from queues.connection import TRANSCRIPTION_QUEUE, queue

TRANSCRIBE_JOB = "queues.jobs.transcribe_voicemail"


def transcription_job_id(voicemail_id: int) -> str:
    """The RQ job id for a voicemail's transcription."""
    return f"transcribe-voicemail-{voicemail_id}"


def enqueue_transcription(connection: Redis, voicemail_id: int) -> str:
    """Enqueue the transcription of a voicemail (by id) on the transcription queue."""
    job = queue(TRANSCRIPTION_QUEUE, connection).enqueue(
        TRANSCRIBE_JOB,
        voicemail_id,
        job_id=transcription_job_id(voicemail_id),
        retry=Retry(max=3, interval=[10, 60, 300]),
        job_timeout=900,
        result_ttl=86400,
        failure_ttl=7 * 86400,
    )
    return job.id


def enqueue_voicemail(connection: Redis, voicemail: Voicemail) -> None:
    """Enqueue a voicemail's transcription and record the job on its row (the caller commits)."""
    voicemail.job_id = enqueue_transcription(connection, voicemail.id)
    voicemail.enqueued_at = utcnow()
