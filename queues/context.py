"""How a job finds this process's services without Flask: a context set by the worker.

:func:`queues.worker.run_worker` builds one :class:`JobContext` per worker process (services,
and the speech model loaded once and reused by every job) and runs the worker inside
:func:`job_context`; tests do the same around a burst ``SimpleWorker``. A context variable
rather than a module global, so two contexts never leak into each other.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Iterator

from callflows.services import Services
from queues.errors import NoJobContext
from transcription import Transcriber, VoskTranscriber


@dataclass
class JobContext:
    """What jobs of one worker process share."""

    services: Services
    transcriber: Transcriber | None = field(default=None, repr=False)  # None: made on first use

    def speech(self) -> Transcriber:
        """The speech model of this process, created on first use and kept for every later job."""
        if self.transcriber is None:
            self.transcriber = VoskTranscriber(self.services.settings.vosk_model_path)
        return self.transcriber


_CURRENT: ContextVar[JobContext] = ContextVar("peerline_job_context")


@contextmanager
def job_context(context: JobContext | Services) -> Iterator[JobContext]:
    """Run the enclosed jobs with ``context`` (or a new context for these services)."""
    ctx = context if isinstance(context, JobContext) else JobContext(context)
    token = _CURRENT.set(ctx)
    try:
        yield ctx
    finally:
        _CURRENT.reset(token)


def current() -> JobContext:
    """The job context of this worker (raises :class:`NoJobContext` outside one)."""
    try:
        return _CURRENT.get()
    except LookupError:
        raise NoJobContext("no job context: run jobs with queues.worker.run_worker or inside job_context") from None
