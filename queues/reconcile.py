"""Reconcilers: the database is the source of truth; re-create work that has no live job
(a Redis flush, a killed worker), close callback windows that passed, recover lost attempts,
and import the recordings whose status callback never stored a voicemail (Twilio is the
source of truth for those)."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from rq.job import JobStatus
from sqlalchemy import select

from callflows import callbacks, line, voicemails
from callflows.errors import TwilioGatewayError
from callflows.services import Services
from callflows.times import aware
from models import CallbackRequest, Voicemail, utcnow
from queues.connection import LIVE, job_is_live, job_status
from queues.scheduler import due_job_id, schedule_due, transcription_job_id

log = logging.getLogger(__name__)

# How far back the reconciler looks at Twilio's recordings. Twilio keeps a recording until we
# delete it (after it is transcribed), so a lost one stays listed; two days cover a long
# outage of the database or of the workers, and keep the list (and its pages) short.
RECORDINGS_LOOKBACK = timedelta(hours=48)


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


def import_lost_recordings(svc: Services, now: datetime | None = None) -> list[int]:
    """Store the recent recordings that have no voicemail (their status callback was lost); returns new voicemail ids."""
    now = now or utcnow()
    try:
        recordings = svc.twilio.list_recordings(now - RECORDINGS_LOOKBACK)
    except TwilioGatewayError as exc:
        log.warning("could not list Twilio's recordings (tried again at the next tick): %s", exc)
        return []
    with svc.sessions() as session:
        imported = voicemails.import_missing(session, svc, recordings, now)
    if imported:
        log.warning("imported voicemails %s from Twilio's recordings: their status callback never stored them",
                    imported)
    return imported


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
