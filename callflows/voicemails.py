"""Voicemails: one row per recording, stored before anything else, then transcribed in the background."""
from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from callflows.calls import find_or_create_call, record_event
from callflows.errors import SchedulingError
from callflows.services import Services
from models import Voicemail, utcnow

log = logging.getLogger(__name__)


def recording_done(session: Session, svc: Services, recording_sid: str, recording_url: str, call_sid: str,
                   language: str | None, duration_s: int | None) -> Voicemail:
    """A finished recording: keep it as a pending voicemail (once per recording), then ask for its transcription.

    The row is committed first: with Redis down the voicemail stays pending with no job,
    and the reconciler enqueues it once Redis is back. Nothing is lost.
    """
    vm = session.scalar(select(Voicemail).where(Voicemail.recording_sid == recording_sid))
    if vm is None:  # Twilio retries callbacks: one voicemail per recording
        call = find_or_create_call(session, call_sid)
        session.flush()
        vm = Voicemail(recording_sid=recording_sid, recording_url=recording_url, call_id=call.id,
                       caller_id=call.caller_id, language=language or call.language, duration_s=duration_s)
        session.add(vm)
        session.commit()
    if vm.job_id is None:
        try:
            enqueue_transcription(svc, vm)
        except SchedulingError:
            log.exception("could not enqueue transcription of voicemail %s (the reconciler will)", vm.id)
        else:
            session.commit()
    return vm


def message_left(session: Session, call_sid: str, duration: str | None) -> None:
    """The caller finished recording: the call's outcome is a voicemail (the recording itself arrives separately)."""
    call = find_or_create_call(session, call_sid)
    call.outcome = "voicemail"
    record_event(session, call_sid, "voicemail", None, duration)
    session.commit()


def enqueue_transcription(svc: Services, vm: Voicemail) -> None:
    """Ask for a voicemail's transcription and record the job on its row (the caller commits)."""
    vm.job_id = svc.jobs.transcribe(vm.id)
    vm.enqueued_at = utcnow()
