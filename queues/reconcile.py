"""Reconcilers: the database is the source of truth; re-create work that has no live job
(a Redis flush, a killed worker), close callback windows that passed, recover lost attempts,
and import the recordings whose status callback never stored a voicemail (Twilio is the
source of truth for those). Jobs whose worker died are handed back to RQ at once
(:func:`recover_abandoned_jobs`), before the reconcilers look at what is live.
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from redis import Redis
from rq import Worker
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.exceptions import InvalidJobOperation
from rq.executions import Execution
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import as_text, utcparse
from sqlalchemy import select

from callflows import callbacks, line, repair, voicemails
from callflows.errors import TwilioGatewayError
from callflows.services import Services
from callflows.times import aware
from models import CallbackRequest, Voicemail, utcnow
from queues.connection import ALL_QUEUES, LIVE, job_is_live, job_status, queue
from queues.scheduler import due_job_id, schedule_due, transcription_job_id

log = logging.getLogger(__name__)

# How far back the reconciler looks at Twilio's recordings. Twilio keeps a recording until we
# delete it (after it is transcribed), so a lost one stays listed; two days cover a long
# outage of the database or of the workers, and keep the list (and its pages) short.
RECORDINGS_LOOKBACK = timedelta(hours=48)
# Redis forgets every subscription when it restarts; a live worker subscribes again within
# seconds (RQ's listener retries every 2 s). Until then its silence proves nothing.
RESUBSCRIBE_GRACE = timedelta(seconds=15)
# Clocks of different machines disagree a little.
CLOCK_SKEW = timedelta(seconds=2)
# One recovery at a time across workers: two would retry the same job twice.
RECOVERY_LOCK = "peerline:recover-abandoned-jobs"


def redis_started_at(connection: Redis) -> datetime:
    """When the Redis server (re)started, by its own clock."""
    seconds, micros = connection.time()
    uptime = float(connection.info("server").get("uptime_in_seconds", 0))
    return datetime.fromtimestamp(seconds + micros / 1e6 - uptime, timezone.utc)


def worker_is_gone(connection: Redis, worker_name: str, redis_since: datetime) -> bool:
    """True when the RQ worker ``worker_name`` no longer runs (``redis_since``: when Redis started).

    RQ's own test is the worker's hash: it expires once the heartbeats stop (a minute and a
    half after a SIGKILL in the middle of a job) and it records a clean death. Sooner: every
    RQ worker listens on its command channel for as long as its process lives (its work horse
    and its scheduler share that socket), and Redis drops a dead process's subscription at once.
    """
    key = Worker.redis_worker_namespace_prefix + worker_name
    if not connection.exists(key) or connection.hexists(key, "death"):
        return True
    birth = connection.hget(key, "birth")
    born_since = birth is not None and utcparse(as_text(birth)) > redis_since + CLOCK_SKEW
    if not born_since and utcnow() - redis_since < RESUBSCRIBE_GRACE:
        return False  # it subscribed before Redis restarted, and may not have subscribed again yet
    ((_channel, listeners),) = connection.pubsub_numsub(PUBSUB_CHANNEL_TEMPLATE % worker_name)
    return int(listeners) == 0


def _abandoned(connection: Redis, registry: StartedJobRegistry, redis_since: datetime) -> list[tuple[str, str]]:
    """The (job id, execution id) entries of ``registry`` whose worker is gone."""
    found = []
    for job_id, execution_id in registry.get_job_and_execution_ids(cleanup=False):
        try:
            worker_name = Execution.fetch(execution_id, job_id, connection).worker_name
        except ValueError:  # the execution expired with its heartbeats: nobody runs it
            found.append((job_id, execution_id))
            continue
        if worker_name and worker_is_gone(connection, worker_name, redis_since):
            found.append((job_id, execution_id))
    return found


def recover_abandoned_jobs(connection: Redis) -> list[str]:
    """Jobs still marked started whose worker died: retried (at once) or failed, the RQ way; returns their ids.

    RQ finds such a job only after its execution's heartbeat expires and its maintenance
    runs (up to fourteen minutes). Here each one is marked expired now and handed to RQ's own
    :meth:`StartedJobRegistry.cleanup`, which does what it always does with an abandoned job:
    retries it when it has retries left (``Retry`` on the job), else records it failed
    (``AbandonedJobError``) for the reconcilers to re-create what the database still needs.
    A retry runs at once: its interval is for a job that failed, and this one did not.
    """
    if not connection.set(RECOVERY_LOCK, "1", nx=True, ex=60):
        return []
    try:
        since = redis_started_at(connection)
        recovered: list[str] = []
        for name in ALL_QUEUES:
            q = queue(name, connection)
            started = StartedJobRegistry(queue=q)
            abandoned = _abandoned(connection, started, since)
            if not abandoned:
                continue
            connection.zadd(started.key, {f"{job_id}:{execution_id}": 0 for job_id, execution_id in abandoned}, xx=True)
            started.cleanup()
            scheduled = ScheduledJobRegistry(queue=q)
            for job_id in dict.fromkeys(job_id for job_id, _ in abandoned):
                if job_status(connection, job_id) == JobStatus.SCHEDULED:
                    try:
                        scheduled.requeue(job_id)
                    except InvalidJobOperation:  # a scheduler enqueued it meanwhile
                        pass
                recovered.append(job_id)
    finally:
        connection.delete(RECOVERY_LOCK)
    if recovered:
        log.warning("jobs %s were running in a worker that died: handed back to RQ", recovered)
    return recovered


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


def reconcile_wrap_ups(svc: Services, now: datetime | None = None) -> None:
    """Free the peers whose wrap-up is over by the clock (its job was lost: a Redis flush), then offer the line."""
    with svc.sessions() as session:
        line.reconcile(session, svc, now or utcnow())


def repair_peer_state(svc: Services, now: datetime | None = None) -> list[int]:
    """Ask Twilio about peers held busy with no news (lost status callbacks) and free them; returns peer ids."""
    with svc.sessions() as session:
        return repair.repair_peers(session, svc, now or utcnow())


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
