"""Worker entry point: reconcile, schedule upkeep, then work the queues with this process's services."""
from __future__ import annotations

import logging
from dataclasses import replace

from rq import Worker

from callflows.services import Services
from models.session import BACKGROUND_TIMEOUT_S, make_engine, make_sessionmaker
from queues.connection import ALL_QUEUES, queue, without_timeout
from queues.context import JobContext, job_context
from queues.periodic import schedule_purge, schedule_tick
from queues.reconcile import (
    import_lost_recordings,
    reconcile_callbacks,
    recover_abandoned_jobs,
    requeue_pending_voicemails,
)
from transcription import ModelUnavailableError

log = logging.getLogger(__name__)


def for_background(svc: Services) -> Services:
    """The services with background timeouts: jobs may run longer statements than a webhook,
    and the worker blocks on Redis waiting for work."""
    engine = make_engine(svc.settings.database_url, timeout_s=BACKGROUND_TIMEOUT_S)
    return replace(svc, engine=engine, sessions=make_sessionmaker(engine), redis=without_timeout(svc.redis))


def run_worker(svc: Services, queue_names: tuple[str, ...] = ALL_QUEUES, burst: bool = False,
               worker_class: type[Worker] = Worker) -> bool:
    """Run an RQ worker whose jobs share ``svc`` (built once for all jobs of this process)."""
    svc = for_background(svc)
    recover_abandoned_jobs(svc.redis)  # jobs of a worker that died (this one's predecessor?) run again now
    import_lost_recordings(svc)  # voicemails whose status callback was lost (the database was down)
    requeue_pending_voicemails(svc)
    reconcile_callbacks(svc)  # a flushed Redis or a killed worker loses no callback
    schedule_tick(svc.redis)
    schedule_purge(svc.redis)  # the daily retention purge; never a second copy
    context = JobContext(svc)
    if svc.settings.vosk_model_path:
        # Loaded once here, before the worker forks a work horse per job: every horse
        # inherits the loaded model instead of loading it again.
        try:
            context.speech().check()
        except ModelUnavailableError as exc:
            log.warning("speech model unavailable; voicemails stay pending: %s", exc)
    with job_context(context):
        worker = worker_class([queue(n, svc.redis) for n in queue_names], connection=svc.redis)
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))
