"""Reconcilers: the database is the source of truth; re-create work that has no live job
(a Redis flush, a killed worker), close callback windows that passed, recover lost attempts."""
from __future__ import annotations

import logging
from datetime import datetime

from rq.job import JobStatus
from sqlalchemy import select

from callflows import callbacks, line, voicemails
from callflows.services import Services
from callflows.times import aware
from models import CallbackRequest, Voicemail, utcnow
from queues.connection import LIVE, job_is_live, job_status
from queues.scheduler import due_job_id, schedule_due, transcription_job_id

log = logging.getLogger(__name__)


def requeue_pending_voicemails(svc: Services) -> list[int]:
    """Enqueue transcription for pending voicemails whose job is missing or dead."""
    requeued = []
    with svc.sessions() as session:
        pending = session.scalars(select(Voicemail).where(Voicemail.status == "pending")).all()
        for vm in pending:
            if job_is_live(svc.redis, transcription_job_id(vm.id)):
                continue
            voicemails.enqueue_transcription(svc, vm)
            requeued.append(vm.id)
        session.commit()
    if requeued:
        log.info("re-enqueued transcription of voicemails %s", requeued)
    return requeued


def reconcile_callbacks(svc: Services, now: datetime | None = None) -> list[int]:
    """Close passed windows, recover lost attempts, re-create lost jobs, offer due callbacks; returns ids re-enqueued."""
    now = now or utcnow()
    requeued = []
    with svc.sessions() as session:
        callbacks.expire_and_recover(session, svc, now)
        pending = session.scalars(select(CallbackRequest).where(CallbackRequest.status == "pending")
                                  .order_by(CallbackRequest.arrived_at)).all()
        any_due = False
        for cb in pending:
            due_at = aware(cb.due_at)
            any_due = any_due or due_at is None or due_at <= now
            # A finished job already offered it (it now waits for a free peer); a missing or
            # failed one (Redis flushed, worker killed) is re-created.
            if job_status(svc.redis, due_job_id(cb.id, cb.attempts)) not in (*LIVE, JobStatus.FINISHED):
                schedule_due(svc.redis, cb.id, cb.attempts, due_at)
                requeued.append(cb.id)
        if any_due:
            line.dispatch(session, svc, now)
    if requeued:
        log.info("re-enqueued callbacks %s", requeued)
    return requeued
