"""Periodic upkeep without an extra service: a self-rescheduling RQ job run by the workers'
built-in scheduler (``with_scheduler=True``). It re-enqueues work that lost its job, so a Redis
flush or a killed worker is repaired within one interval."""
from __future__ import annotations

import logging
from datetime import timedelta

from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from ivr.services import services
from queues.callbacks import reconcile_callbacks
from queues.connection import DEFAULT_QUEUE, queue
from queues.reconcile import requeue_pending_voicemails

log = logging.getLogger(__name__)

TICK_JOB = "queues.periodic.tick"
TICK_PREFIX = "peerline-tick-"
DEFAULT_INTERVAL_S = 60


def _tick_scheduled(q: Queue) -> bool:
    registry = ScheduledJobRegistry(queue=q)
    return any(job_id.startswith(TICK_PREFIX) for job_id in registry.get_job_ids())


def schedule_tick(connection: Redis, interval_s: int = DEFAULT_INTERVAL_S) -> bool:
    """Schedule the next tick unless one is already scheduled; returns whether it scheduled."""
    q = queue(DEFAULT_QUEUE, connection)
    if _tick_scheduled(q):
        return False
    import uuid

    q.enqueue_in(timedelta(seconds=interval_s), TICK_JOB, interval_s,
                 job_id=TICK_PREFIX + uuid.uuid4().hex[:12], result_ttl=0, failure_ttl=3600)
    return True


def tick(interval_s: int = DEFAULT_INTERVAL_S) -> dict[str, list[int]]:
    """Run every reconciler once, then schedule the next tick."""
    svc = services()
    done = {"voicemails": requeue_pending_voicemails(svc.sessions, svc.redis)}
    done["callbacks"] = reconcile_callbacks(svc)
    schedule_tick(svc.redis, interval_s)
    return done
