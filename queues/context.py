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
    # One transcriber for every language (tests share a loaded model this way); None: per language.
    transcriber: Transcriber | None = field(default=None, repr=False)
    # The per-language models of this process, by model path: two languages that share a path
    # share one loaded model.
    models: dict[str, Transcriber] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        # The one REST client of the process is built now, before any job runs (and before RQ
        # forks a work horse per job, which inherits it): building it imports the twilio
        # library's REST modules, about 0.2 s that the first call placed (in a forking worker
        # whose start-up did not happen to build it, every call placed) would otherwise wait
        # for, with the peer's phone not yet ringing.
        self.services.twilio  # noqa: B018 (built for what building it does)

    def speech(self, language: str | None = None) -> Transcriber:
        """The speech model for ``language`` (VOSK_MODEL_PATH_<LANG>, else VOSK_MODEL_PATH),
        created on first use and kept for every later job of this process."""
        if self.transcriber is not None:
            return self.transcriber
        path = self.services.settings.model_path_for(language)
        if path not in self.models:
            self.models[path] = VoskTranscriber(path, language=(language or "en")[:2])
        return self.models[path]


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
