"""RQ job functions. They take ids, never objects, and are idempotent.

Jobs run inside the app context that the worker builds once per process (see
:mod:`queues.worker`), so connections come from ``app.extensions``, never from globals.
"""
from __future__ import annotations

import logging

from ivr.services import services

log = logging.getLogger(__name__)


def transcribe_voicemail(voicemail_id: int) -> str:
    """Fetch, store, transcribe and triage one voicemail (the transcription pipeline)."""
    from queues.transcribe import run_transcription

    status = run_transcription(services(), voicemail_id)
    if status == "missing":
        log.warning("voicemail %s no longer exists; nothing to do", voicemail_id)
    return status
