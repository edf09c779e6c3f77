"""The exceptions of the ``queues`` package, under one base.

- :class:`QueueError`: base class of everything raised here.
- :class:`NoJobContext`: a job ran in a process that did not set up its services
  (run jobs with :func:`queues.worker.run_worker` or inside :func:`queues.context.job_context`).
- :class:`StoredAudioMissing`: our copy of a voicemail's audio is gone and Twilio's was
  already deleted (the voicemail is marked failed with that reason).
"""
from __future__ import annotations


class QueueError(Exception):
    """Base class of the errors raised by the queues package."""


class NoJobContext(QueueError, RuntimeError):
    """A job ran without this process's services."""


class StoredAudioMissing(QueueError):
    """Our copy of the audio is gone and Twilio's copy was already deleted."""
