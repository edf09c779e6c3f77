"""Worker entry point: reconcile, schedule upkeep, then work the queues with this process's services.

:class:`PeerlineWorker` is RQ's forking worker whose regular maintenance also keeps the line's
upkeep going, so that no fault needs a restart to be repaired:

- it runs RQ's scheduler (``with_scheduler=True``), and takes over the scheduler of a worker
  that died instead of waiting for that scheduler's lock to expire;
- it hands jobs whose worker died back to RQ (:func:`queues.reconcile.recover_abandoned_jobs`);
- it puts back the periodic tick and the daily purge when they are missing (a Redis flush or
  restart), and its own registration (``/healthz`` counts the workers RQ lists).

RQ's maintenance runs every ten minutes by default and an idle worker wakes every six and a
half; here both are a fraction of the tick's minute (RQ's cleaning of its registries keeps its
own pace).
"""
from __future__ import annotations

import logging
import os
import socket
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Worker
from rq.job import Job
from rq.defaults import DEFAULT_MAINTENANCE_TASK_INTERVAL
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.utils import decode_redis_hash, now, utcparse
from rq.worker_registration import REDIS_WORKER_KEYS, register

from callflows.services import Services
from callflows.settings import SPEECH_LANGUAGES
from models.session import BACKGROUND_TIMEOUT_S, make_engine, make_sessionmaker
from queues.connection import ALL_QUEUES, queue, without_timeout
from queues.context import JobContext, current, job_context
from queues.periodic import keep_scheduled
from queues.reconcile import (
    import_lost_recordings,
    reconcile_callbacks,
    reconcile_wrap_ups,
    recover_abandoned_jobs,
    requeue_pending_voicemails,
)
from transcription import ModelUnavailableError

log = logging.getLogger(__name__)

# How often each worker runs its maintenance (RQ's registries and scheduler, then the line's
# upkeep), idle or between jobs; RQ's default is ten minutes.
UPKEEP_INTERVAL_S = 30
# RQ wakes an idle worker every worker_ttl - 15 seconds: this one at each maintenance round.
WORKER_TTL_S = UPKEEP_INTERVAL_S + 15
# An RQ scheduler beats every second; one silent for this long is dead (or hung).
SCHEDULER_SILENT = timedelta(seconds=15)


def _process_runs(pid: int) -> bool:
    """True when process ``pid`` of this host runs (a zombie has ended: killed, not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here: it exists, so it runs
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def scheduler_is_gone(connection: Redis, name: str) -> bool:
    """True when the RQ scheduler ``name`` no longer runs: silent, or its process is gone from this host.

    A scheduler with no record yet is being born (it takes its locks, then writes its record);
    a record that expired goes with the scheduler's locks. A mistake costs nothing: a live
    scheduler whose lock was released takes it again, or stands down, at its next beat.
    """
    # Read field by field: after a flush, the scheduler's next beat writes its last_heartbeat alone.
    record = decode_redis_hash(connection.hgetall(SCHEDULER_KEY_TEMPLATE % name), decode_values=True)
    beat = record.get("last_heartbeat")
    if not beat:
        return False
    if now() - utcparse(beat) > SCHEDULER_SILENT:
        return True
    pid = int(record.get("pid") or 0)
    return record.get("hostname") == socket.gethostname() and pid > 0 and not _process_runs(pid)


def release_dead_scheduler_locks(connection: Redis, queue_names: tuple[str, ...] = ALL_QUEUES) -> list[str]:
    """Free the scheduler locks held by schedulers that died; returns the queues freed.

    A scheduler's lock outlives it by a minute, and a worker that does not get it at start
    tries again only at its maintenance: a worker that replaces a killed one would run without
    a scheduler meanwhile.
    """
    freed = []
    for name in queue_names:
        key = RQScheduler.get_locking_key(name)
        holder = connection.get(key)
        if holder is None:
            continue
        owner = holder.decode() if isinstance(holder, bytes) else str(holder)
        if scheduler_is_gone(connection, owner) and release_lock(connection, key, owner):
            freed.append(name)
    if freed:
        log.warning("scheduler locks of %s were held by a scheduler that died: released", freed)
    return freed


class PeerlineWorker(Worker):
    """RQ's worker, whose maintenance also keeps the line's upkeep going (see the module docstring)."""

    registries_cleaned_at: datetime | None = None
    cleaning_round = True  # whether this maintenance round also cleans RQ's registries

    def clean_registries(self) -> None:
        """RQ's cleaning of its registries, at RQ's own pace, though maintenance runs more often."""
        due = timedelta(seconds=DEFAULT_MAINTENANCE_TASK_INTERVAL)
        self.cleaning_round = self.registries_cleaned_at is None or now() - self.registries_cleaned_at >= due
        if self.cleaning_round:
            super().clean_registries()
            self.registries_cleaned_at = now()
        # The maintenance round is done (RQ's attribute is untyped, so mypy takes it for None only).
        self.last_cleaned_at = now()  # type: ignore[assignment]

    def clean_group_registries(self) -> None:
        """RQ's cleaning of its group registries, with the others."""
        if self.cleaning_round:
            super().clean_group_registries()

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """The forked child that runs one job: first let go of the database connections it inherited."""
        # The pool's connections were opened by the worker process (the reconcilers at start);
        # sharing a socket with the parent corrupts both sides' protocol state, so the child
        # detaches them without closing (SQLAlchemy's advice for fork) and opens its own.
        current().services.engine.dispose(close=False)
        super().main_work_horse(job, queue)

    def run_maintenance_tasks(self) -> None:
        """Take over a dead scheduler's lock, run RQ's maintenance (which starts our scheduler), then the line's upkeep."""
        try:
            release_dead_scheduler_locks(self.connection, tuple(self.queue_names()))
        except (RedisError, ValueError) as exc:  # ValueError: a record in a shape RQ never writes
            log.warning("could not check the scheduler locks: %s", exc)
        super().run_maintenance_tasks()
        try:
            self.register_again()
            recover_abandoned_jobs(self.connection)
            restored = keep_scheduled(self.connection)
        except RedisError as exc:  # the next round tries again
            log.warning("worker upkeep failed: %s", exc)
            return
        if restored:
            log.warning("missing (Redis flushed or restarted?), scheduled again: %s", ", ".join(restored))

    def register_again(self) -> bool:
        """List this worker again if Redis lost it (RQ registers a worker only at its birth); returns whether it did."""
        if self.connection.sismember(REDIS_WORKER_KEYS, self.key):
            return False
        with self.connection.pipeline() as pipeline:
            pipeline.hset(self.key, mapping=self.serialize())
            register(self, pipeline)
            pipeline.expire(self.key, self.worker_ttl + 60)
            pipeline.execute()
        log.warning("worker %s was not listed in Redis (flushed or restarted?): registered again", self.name)
        return True


def for_background(svc: Services) -> Services:
    """The services with background timeouts: jobs may run longer statements than a webhook,
    and the worker blocks on Redis waiting for work."""
    engine = make_engine(svc.settings.database_url, timeout_s=BACKGROUND_TIMEOUT_S)
    return replace(svc, engine=engine, sessions=make_sessionmaker(engine), redis=without_timeout(svc.redis))


def load_speech_models(context: JobContext) -> list[str]:
    """Load each configured speech model once, before the worker forks; returns the paths loaded.

    RQ forks a work horse per job: a model loaded in the horse dies with it, so one loaded
    here is inherited by every horse instead of being loaded again for each job. Only the
    models a language is configured with are loaded, and two languages that share a model
    (VOSK_MODEL_PATH for both) load it once.
    """
    loaded = []
    for language in SPEECH_LANGUAGES:
        if not context.services.settings.model_path_for(language):
            log.warning("no %s speech model (VOSK_MODEL_PATH_%s or VOSK_MODEL_PATH): %s voicemails stay pending",
                        language, language.upper(), language)
            continue
        speech = context.speech(language)
        try:
            speech.check()
        except ModelUnavailableError as exc:
            log.warning("%s speech model unavailable; %s voicemails stay pending: %s", language, language, exc)
            continue
        path = getattr(speech, "model_path", "")
        if path not in loaded:
            loaded.append(path)
    return loaded


def run_worker(svc: Services, queue_names: tuple[str, ...] = ALL_QUEUES, burst: bool = False,
               worker_class: type[Worker] = PeerlineWorker) -> bool:
    """Run an RQ worker (with its scheduler) whose jobs share ``svc`` (built once for all jobs of this process)."""
    svc = for_background(svc)
    recover_abandoned_jobs(svc.redis)  # jobs of a worker that died (this one's predecessor?) run again now
    release_dead_scheduler_locks(svc.redis, queue_names)  # so this worker's scheduler starts at once
    import_lost_recordings(svc)  # voicemails whose status callback was lost (the database was down)
    requeue_pending_voicemails(svc)
    reconcile_callbacks(svc)  # a flushed Redis or a killed worker loses no callback
    reconcile_wrap_ups(svc)  # nor a peer's way out of wrap-up
    keep_scheduled(svc.redis)  # the tick and the daily retention purge; never a second copy
    context = JobContext(svc)
    load_speech_models(context)
    with job_context(context):
        worker = worker_class([queue(n, svc.redis) for n in queue_names], connection=svc.redis,
                              worker_ttl=WORKER_TTL_S, maintenance_interval=UPKEEP_INTERVAL_S)
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))
