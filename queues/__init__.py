"""Background work on RQ: connection, queues, job functions, reconciler, worker entry point.

Named ``queues`` and not ``queue``: a top-level package called ``queue`` would shadow the
standard library module that redis-py, concurrent.futures and logging import.

Exceptions: :class:`QueueError` is the base; job functions raise :class:`JobError` for
failures that RQ should record as failed (and that a retry may fix).
"""
from __future__ import annotations


class QueueError(Exception):
    """Base class for errors raised by the queues package."""


class JobError(QueueError):
    """A job could not finish; the row it works on records why."""
