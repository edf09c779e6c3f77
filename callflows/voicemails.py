"""Voicemails: one row per recording, stored before anything else, then transcribed in the background.

A recording reaches us in one of two ways, and both store it with :func:`store_recording`:
Twilio's recording status callback (:func:`recording_done`), or, when that callback was lost
(the database was down, so the webhook answered without storing anything, and Twilio does
not retry forever), the reconciler's reading of Twilio's list of recordings
(:func:`import_missing`).
"""
from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callflows.calls import find_or_create_call, record_event
from callflows.errors import SchedulingError
from callflows.services import Services
from callflows.twilio_client import RecordingInfo
from models import Call, Voicemail, utcnow

log = logging.getLogger(__name__)

# How long after a recording ends its own status callback has to store it before the
# reconciler does. Twilio posts the callback within seconds; the margin keeps the normal
# path the one that stores a voicemail (with the language the caller chose in the call).
CALLBACK_GRACE = timedelta(minutes=2)
# Longer than any recording can be (<Record> stops at the settings' maxLength, minutes): a
# duration outside 0..this is garbled, and the voicemail is kept with its duration unknown.
MAX_RECORDING_S = 24 * 3600


def known_duration(seconds: int | None) -> int | None:
    """A recording's reported length in seconds, or None when missing or impossible (negative, over a day)."""
    if seconds is None or not 0 <= seconds <= MAX_RECORDING_S:
        return None
    return seconds


def recording_done(session: Session, svc: Services, recording_sid: str, recording_url: str, call_sid: str,
                   language: str | None, duration_s: int | None) -> Voicemail:
    """A finished recording: keep it as a pending voicemail (once per recording), then ask for its transcription.

    The row is committed first: with Redis down the voicemail stays pending with no job,
    and the reconciler enqueues it once Redis is back. Nothing is lost, whatever the reported
    duration (an impossible one is stored as unknown).
    """
    vm, _ = store_recording(session, recording_sid, recording_url, call_sid, language, duration_s)
    request_transcription(session, svc, vm)
    return vm


def store_recording(session: Session, recording_sid: str, recording_url: str, call_sid: str,
                    language: str | None, duration_s: int | None,
                    left_at: datetime | None = None) -> tuple[Voicemail, bool]:
    """The pending voicemail of a recording, created and committed unless it exists; returns it and whether it is new.

    Raises :class:`~sqlalchemy.exc.IntegrityError` when a concurrent writer stored the same
    recording (or the same call) first; the session must then be rolled back.
    """
    vm = session.scalar(select(Voicemail).where(Voicemail.recording_sid == recording_sid))
    if vm is not None:  # Twilio retries callbacks: one voicemail per recording
        return vm, False
    call = find_or_create_call(session, call_sid)
    session.flush()
    vm = Voicemail(recording_sid=recording_sid, recording_url=recording_url, call_id=call.id,
                   caller_id=call.caller_id, language=language or call.language, duration_s=known_duration(duration_s))
    if left_at is not None:
        vm.created_at = left_at  # when the caller left it, not when it was found
    session.add(vm)
    session.commit()
    return vm, True


def request_transcription(session: Session, svc: Services, vm: Voicemail) -> None:
    """Enqueue the transcription of a voicemail that has no job yet, and commit the job id."""
    if vm.job_id is not None:
        return
    try:
        enqueue_transcription(svc, vm)
    except SchedulingError:
        log.exception("could not enqueue transcription of voicemail %s (the reconciler will)", vm.id)
    else:
        session.commit()


def import_missing(session: Session, svc: Services, recordings: list[RecordingInfo], now: datetime) -> list[int]:
    """Store, as pending voicemails, listed recordings that no voicemail row has (their callback was lost);
    returns the ids of the voicemails created.

    Every recording of the account is a voicemail: the line records nothing else (live peer
    calls are not recorded). Skipped: recordings Twilio has not finished, recordings with no
    call, recordings that ended less than :data:`CALLBACK_GRACE` ago (their callback may still
    be on its way), and recordings that have a row, whatever its state: a purged voicemail
    keeps its ``recording_sid``, so what was deleted on our side is never brought back.
    """
    ready = [rec for rec in recordings
             if rec.status == "completed" and rec.call_sid
             and rec.created_at + timedelta(seconds=known_duration(rec.duration_s) or 0) + CALLBACK_GRACE <= now]
    if not ready:
        return []
    known = set(session.scalars(select(Voicemail.recording_sid)
                                .where(Voicemail.recording_sid.in_([rec.sid for rec in ready]))))
    imported = []
    for rec in ready:
        if rec.sid in known:
            continue
        assert rec.call_sid is not None  # filtered above
        call = session.scalar(select(Call).where(Call.call_sid == rec.call_sid))
        if call is None:
            # No webhook of the call was stored (the database was down throughout). The
            # recording shows the call reached voicemail and is over, so it must not look live;
            # its times are the best known (the call began a little earlier).
            call = find_or_create_call(session, rec.call_sid)
            call.status, call.outcome = "completed", "voicemail"
            call.started_at = rec.created_at
            call.ended_at = rec.created_at + timedelta(seconds=known_duration(rec.duration_s) or 0)
        # The language of the call, else the one the caller chose last time, else unknown.
        language = call.language or (call.caller.language if call.caller else None)
        # A late status callback racing this import is harmless: store_recording looks for the
        # row again just before inserting, and the unique recording_sid (and call_sid) make
        # the slower of two inserts fail; the loser here rolls back and goes on, and the row
        # the callback stored is the voicemail (it is never doubled).
        try:
            vm, created = store_recording(session, rec.sid, svc.twilio.recording_url(rec.sid), rec.call_sid,
                                          language, rec.duration_s, left_at=rec.created_at)
        except IntegrityError:
            session.rollback()
            log.info("recording %s was stored by another writer meanwhile; looked at again next time", rec.sid)
            continue
        request_transcription(session, svc, vm)
        if created:
            imported.append(vm.id)
    return imported


def message_left(session: Session, call_sid: str, duration_s: int | None) -> None:
    """The caller finished recording: the call's outcome is a voicemail (the recording itself arrives separately)."""
    call = find_or_create_call(session, call_sid)
    call.outcome = "voicemail"
    seconds = known_duration(duration_s)
    record_event(session, call_sid, "voicemail", None, None if seconds is None else str(seconds))
    session.commit()


def enqueue_transcription(svc: Services, vm: Voicemail) -> None:
    """Ask for a voicemail's transcription and record the job on its row (the caller commits)."""
    vm.job_id = svc.jobs.transcribe(vm.id)
    vm.enqueued_at = utcnow()
