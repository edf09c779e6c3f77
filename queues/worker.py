"""Worker entry point: one app per process, reconcile, then work the queues."""
from __future__ import annotations

import logging

from flask import Flask
from rq import Worker

from ivr.services import services
from queues.callbacks import reconcile_callbacks
from queues.connection import ALL_QUEUES, queue
from queues.periodic import schedule_tick
from queues.reconcile import requeue_pending_voicemails
from queues.retention import schedule_purge

log = logging.getLogger(__name__)


def run_worker(app: Flask, queue_names: tuple[str, ...] = ALL_QUEUES, burst: bool = False) -> bool:
    """Run an RQ worker inside ``app``'s context (built once for all jobs of this process)."""
    with app.app_context():
        svc = services(app)
        requeue_pending_voicemails(svc.sessions, svc.redis)
        reconcile_callbacks(svc)  # a flushed Redis or a killed worker loses no callback
        schedule_tick(svc.redis)
        schedule_purge(svc.redis)  # the daily retention purge; never a second copy
        worker = Worker([queue(n, svc.redis) for n in queue_names], connection=svc.redis)
        return bool(worker.work(burst=burst, with_scheduler=True, logging_level="INFO"))
