"""RQ side of callbacks: the job that wakes dispatch when a callback falls due, and the reconciler that rebuilds lost jobs from the database (the source of truth).

Job ids are deterministic (``callback-due-<id>-<attempts>``), so enqueueing twice is harmless,
and every job is idempotent: it re-reads the row and does nothing unless the callback is still
pending and due. Dialling itself is guarded in the database (:func:`ivr.callbacks.ring_peer`
claims the row with one conditional UPDATE), so a job that runs twice never dials twice.

Scheduling relies on RQ's own scheduler (``Worker.work(with_scheduler=True)``, started by
``peerline worker``): no extra service.
"""
from __future__ import annotations

import logging
from datetime import datetime

from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from ivr.services import Services, services
from models import CallbackRequest, utcnow
from queues.connection import CALLBACK_QUEUE, queue
from queues.reconcile import LIVE

log = logging.getLogger(__name__)

DUE_JOB = "queues.callbacks.callback_due"


def due_job_id(callback_id: int, attempts: int) -> str:
    """The RQ job id that wakes dispatch for one try of a callback."""
    return f"callback-due-{callback_id}-{attempts}"


def _status(connection: Redis, job_id: str) -> JobStatus | None:
    try:
        return Job.fetch(job_id, connection=connection).get_status()
    except NoSuchJobError:
        return None


def schedule_due(connection: Redis, callback_id: int, attempts: int, due_at: datetime | None) -> str:
    """Enqueue (now, or at ``due_at``) the job that offers this callback; no-op if it is already waiting."""
    job_id = due_job_id(callback_id, attempts)
    if _status(connection, job_id) in LIVE:
        return job_id
    q = queue(CALLBACK_QUEUE, connection)
    options = {"job_id": job_id, "result_ttl": 86400, "failure_ttl": 7 * 86400, "job_timeout": 120}
    if due_at is not None and due_at > utcnow():
        q.enqueue_at(due_at, DUE_JOB, callback_id, **options)
    else:
        q.enqueue(DUE_JOB, callback_id, **options)
    return job_id


def callback_due(callback_id: int) -> str:
    """RQ job: a callback's window opened (or its retry time came): offer free peers in arrival order."""
    from ivr import callbacks, routing

    svc = services()
    now = utcnow()
    with svc.sessions() as session:
        cb = session.get(CallbackRequest, callback_id)
        if cb is None or cb.status != "pending":
            return "nothing to do"
        if (callbacks.aware(cb.due_at) or now) > now:
            return "not yet due"
        placed = routing.dispatch(session, svc, now)
        return f"dispatched ({placed} calls placed)"


def reconcile_callbacks(svc: Services, now: datetime | None = None) -> list[int]:
    """Close passed windows, recover lost attempts, re-create lost jobs, offer due callbacks; returns ids re-enqueued."""
    from ivr import callbacks, routing

    now = now or utcnow()
    requeued = []
    with svc.sessions() as session:
        callbacks.expire_and_recover(session, svc, now)
        pending = session.scalars(select(CallbackRequest).where(CallbackRequest.status == "pending")
                                  .order_by(CallbackRequest.arrived_at)).all()
        any_due = False
        for cb in pending:
            due_at = callbacks.aware(cb.due_at)
            any_due = any_due or due_at is None or due_at <= now
            # A finished job already offered it (it now waits for a free peer); a missing or
            # failed one (Redis flushed, worker killed) is re-created.
            if _status(svc.redis, due_job_id(cb.id, cb.attempts)) not in (*LIVE, JobStatus.FINISHED):
                schedule_due(svc.redis, cb.id, cb.attempts, due_at)
                requeued.append(cb.id)
        if any_due:
            routing.dispatch(session, svc, now)
    if requeued:
        log.info("re-enqueued callbacks %s", requeued)
    return requeued


def reconcile_job() -> list[int]:
    """RQ job form of :func:`reconcile_callbacks`."""
    return reconcile_callbacks(services())
