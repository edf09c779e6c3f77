"""RQ job functions. They take ids, never objects, are idempotent, and find this process's
services in the job context (:mod:`queues.context`), never in Flask or a global.

Scheduling them is :mod:`queues.scheduler`'s job; the periodic ones are in :mod:`queues.periodic`.
"""
from __future__ import annotations

import logging
import math

from rq import Retry

from callflows import line
from callflows.times import aware
from models import CallbackRequest, utcnow
from queues.context import current
from queues.transcribe import run_transcription

log = logging.getLogger(__name__)


def transcribe_voicemail(voicemail_id: int) -> str:
    """Fetch, store, transcribe and triage one voicemail with its language's model (the transcription pipeline)."""
    ctx = current()
    status = run_transcription(ctx.services, voicemail_id, ctx.speech)
    if status == "missing":
        log.warning("voicemail %s no longer exists; nothing to do", voicemail_id)
    return status


def wrap_up_done(peer_id: int, started: float) -> str:
    """The wrap-up that began at ``started`` (epoch seconds) has passed for ``peer_id``: free them."""
    svc = current().services
    with svc.sessions() as session:
        return line.wrap_up_passed(session, svc, peer_id, started, utcnow())


def dispatch_line() -> int:
    """Offer free peers to waiting callers and due callbacks; returns calls placed."""
    svc = current().services
    with svc.sessions() as session:
        return line.dispatch(session, svc, utcnow())


# How often a callback_due job that ran before its time runs again (each time at its due time).
EARLY_RUNS = 5


def callback_due(callback_id: int) -> str | Retry:
    """A callback's window opened (or its retry time came): offer free peers in arrival order."""
    svc = current().services
    now = utcnow()
    with svc.sessions() as session:
        cb = session.get(CallbackRequest, callback_id)
        if cb is None or cb.status != "pending":
            return "nothing to do"
        due_at = aware(cb.due_at) or now
        if due_at > now:
            # Early (the clock of the worker that scheduled it runs ahead of ours): run this very
            # job again at its time instead of leaving the callback to the next tick. RQ keeps
            # whole seconds, so one more second makes sure the next run is not early too.
            log.info("callback %s is due in %.1f s; this job runs again then", callback_id,
                     (due_at - now).total_seconds())
            return Retry(max=EARLY_RUNS, interval=math.ceil((due_at - now).total_seconds()) + 1)
        placed = line.dispatch(session, svc, now)
        return f"dispatched ({placed} calls placed)"
