"""Background work on RQ: connection, job functions, scheduling, reconcilers, worker entry point.

Named ``queues`` and not ``queue``: a top-level package called ``queue`` would shadow the
standard library module that redis-py, concurrent.futures and logging import.

Layers, each importing only the ones above it: :mod:`~queues.connection` (Redis, queue names,
job state), :mod:`~queues.context` (this process's services for jobs), :mod:`~queues.transcribe`
and :mod:`~queues.jobs` (the job functions), :mod:`~queues.scheduler` (enqueueing them: the
rules' :class:`~callflows.scheduling.Jobs`), :mod:`~queues.reconcile` and
:mod:`~queues.periodic` (upkeep), :mod:`~queues.worker` (the worker). Exceptions are in
:mod:`queues.errors`.
"""
from __future__ import annotations
