"""Periodic upkeep without an extra service: self-rescheduling RQ jobs run by the workers'
built-in scheduler (``with_scheduler=True``).

- the *tick* (every minute) hands jobs whose worker died back to RQ, then runs the
  reconcilers, so a Redis flush, a killed worker or a lost recording status callback is
  repaired within one interval;
- the *retention purge* (daily) applies the retention policy.

Each job schedules its successor, and every worker puts back a missing one
(:func:`keep_scheduled`, at start and at each of its maintenance rounds), so a Redis flush or
restart, or a worker killed in the middle of a tick, never ends either chain.
"""
from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from redis import Redis
from rq import Retry
from rq.registry import ScheduledJobRegistry

from callflows import shifts
from callflows.retention import policy_from, purge
from callflows.services import Services
from queues.connection import DEFAULT_QUEUE, queue
from queues.context import current
from queues.reconcile import (
    import_lost_recordings,
    reconcile_callbacks,
    reconcile_wrap_ups,
    recover_abandoned_jobs,
    repair_peer_state,
    requeue_pending_voicemails,
)

log = logging.getLogger(__name__)

TICK_PREFIX = "peerline-tick-"
DEFAULT_INTERVAL_S = 60
PURGE_JOB_PREFIX = "retention-purge"
PURGE_INTERVAL = timedelta(days=1)


def _waiting(connection: Redis, prefix: str, include_queued: bool) -> bool:
    q = queue(DEFAULT_QUEUE, connection)
    ids = list(ScheduledJobRegistry(queue=q).get_job_ids())
    if include_queued:
        ids.extend(q.get_job_ids())
    return any(job_id.startswith(prefix) for job_id in ids)


def schedule_tick(connection: Redis, interval_s: int = DEFAULT_INTERVAL_S) -> bool:
    """Schedule the next tick unless one is already scheduled; returns whether it scheduled."""
    if _waiting(connection, TICK_PREFIX, include_queued=False):
        return False
    # A tick whose worker died runs again at once (its Retry); one that fails twice is replaced
    # by the next worker maintenance round (keep_scheduled).
    queue(DEFAULT_QUEUE, connection).enqueue_in(
        timedelta(seconds=interval_s), tick, interval_s,
        job_id=TICK_PREFIX + uuid.uuid4().hex[:12], result_ttl=0, failure_ttl=3600, retry=Retry(max=2, interval=10))
    return True


def tick(interval_s: int = DEFAULT_INTERVAL_S) -> dict[str, list[int] | list[str]]:
    """Hand back jobs whose worker died, run every reconciler once, then schedule the next tick."""
    svc = current().services
    # First: a job left "started" by a dead worker would look alive to the reconcilers.
    done: dict[str, list[int] | list[str]] = {"abandoned": recover_abandoned_jobs(svc.redis)}
    done["recordings"] = import_lost_recordings(svc)
    done["voicemails"] = requeue_pending_voicemails(svc)
    done["callbacks"] = reconcile_callbacks(svc)
    reconcile_wrap_ups(svc)
    done["shift_alerts"] = check_shifts(svc)
    done["peers"] = repair_peer_state(svc)
    schedule_tick(svc.redis, interval_s)
    return done


def check_shifts(svc: Services) -> list[int]:
    """Make the shifts of the weeks ahead, then text about shifts whose peers have not signed in."""
    now = datetime.now(timezone.utc)
    with svc.sessions() as session:
        shifts.ensure_shifts(session, svc.settings.zone, now)
        return shifts.alert_unstaffed(session, svc, now)


def keep_scheduled(connection: Redis) -> list[str]:
    """Schedule the tick and the purge where either is missing; returns what was scheduled."""
    missing = []
    if schedule_tick(connection):
        missing.append("tick")
    if schedule_purge(connection) is not None:
        missing.append("purge")
    return missing


def purge_is_scheduled(connection: Redis) -> bool:
    """True when a retention purge job is already waiting (scheduled or queued)."""
    return _waiting(connection, PURGE_JOB_PREFIX, include_queued=True)


def schedule_purge(connection: Redis, delay: timedelta = PURGE_INTERVAL) -> str | None:
    """Schedule the next retention purge after ``delay``; None when one is already waiting."""
    if purge_is_scheduled(connection):
        return None
    # A fresh id per run: the running job schedules its successor, and reusing the running
    # job's own id would let the worker's bookkeeping for this run overwrite the next one.
    job_id = f"{PURGE_JOB_PREFIX}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    job = queue(DEFAULT_QUEUE, connection).enqueue_in(
        delay, scheduled_purge, job_id=job_id, job_timeout=3600, result_ttl=7 * 86400, failure_ttl=30 * 86400)
    return job.id


def scheduled_purge() -> dict[str, int]:
    """Schedule the next run, then purge with the configured retention."""
    svc = current().services
    # The successor is scheduled first, so a failing purge does not end the daily chain.
    schedule_purge(svc.redis, PURGE_INTERVAL)
    settings = svc.settings
    return purge(svc.sessions, Path(settings.instance_path), policy_from(settings)).counts()
