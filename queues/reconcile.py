"""Reconciler: the database is the source of truth; re-enqueue work that has no live job."""
from __future__ import annotations

import logging

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models import Voicemail
from queues.enqueue import enqueue_voicemail, transcription_job_id

log = logging.getLogger(__name__)
LIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.DEFERRED, JobStatus.SCHEDULED}


def _job_is_live(connection: Redis, job_id: str) -> bool:
    try:
        return Job.fetch(job_id, connection=connection).get_status() in LIVE
    except NoSuchJobError:
        return False


def requeue_pending_voicemails(sessions: sessionmaker[Session], connection: Redis) -> list[int]:
    """Enqueue transcription for pending voicemails whose job is missing or dead."""
    requeued = []
    with sessions() as session:
        pending = session.scalars(select(Voicemail).where(Voicemail.status == "pending")).all()
        for vm in pending:
            if _job_is_live(connection, transcription_job_id(vm.id)):
                continue
            enqueue_voicemail(connection, vm)
            requeued.append(vm.id)
        session.commit()
    if requeued:
        log.info("re-enqueued transcription of voicemails %s", requeued)
    return requeued
