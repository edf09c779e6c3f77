"""The voicemail transcription pipeline: fetch, store encrypted, transcribe, store the transcript
encrypted, triage, alert the on-call supervisor, and only then delete Twilio's copy.

Every step checks what an earlier (killed or retried) run already did, so a job that runs
twice never fetches, transcribes or texts twice once the step is recorded:

* audio already stored (``audio_path``) is read back instead of fetched again;
* a voicemail already ``transcribed`` skips straight to the steps that remain;
* ``notified_at`` and ``provider_deleted`` record the last two steps.

Outcomes: ``transcribed``; ``failed`` (the audio cannot be decoded: the reason is kept, and
so is the audio, for a retry); ``pending`` (no speech model yet: the voicemail waits, the
reconciler re-enqueues it, and it is processed once the model is there).
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Callable

from sqlalchemy import update
from sqlalchemy.orm import Session
from twilio.base.exceptions import TwilioRestException

from callflows.errors import TwilioGatewayError
from callflows.escalation import supervisor_numbers
from callflows.services import Services
from callflows.storage import stored_path
from models import Voicemail, utcnow
from models.errors import DecryptError
from queues.errors import StoredAudioMissing
from transcription import AudioError, ModelUnavailableError, Transcriber
from transcription.audio import read_header
from transcription.modelpath import is_demo_for
from transcription.pipeline import Analysis, analyse

log = logging.getLogger(__name__)

AUDIO_DIR = "voicemails"
SUPERVISOR_ALERT = ("peerline: a voicemail marked HIGH RISK is waiting (message #{id}). "
                    "Please review it on the staff dashboard now.")


# A transcriber for every voicemail, or a function choosing one by the voicemail's language.
SpeechModels = Transcriber | Callable[[str | None], Transcriber]


def run_transcription(svc: Services, voicemail_id: int, transcriber: SpeechModels) -> str:
    """Process one voicemail (with the model of its language); returns its resulting status."""
    with svc.sessions() as session:
        vm = session.get(Voicemail, voicemail_id)
        if vm is None:
            return "missing"
        if vm.status == "failed":
            return "failed"  # a person resets it to pending to retry
        if vm.status != "transcribed":
            outcome = _transcribe(svc, session, vm, transcriber)
            if outcome != "transcribed":
                return outcome
        _notify_supervisor(svc, session, vm)
        _delete_provider_copy(svc, session, vm)
        return vm.status


def _transcribe(svc: Services, session: Session, vm: Voicemail, models: SpeechModels) -> str:
    transcriber = models if isinstance(models, Transcriber) else models(vm.language)
    try:
        audio = _audio(svc, session, vm)
    except (StoredAudioMissing, DecryptError) as exc:
        return _fail(session, vm, str(exc))
    try:
        analysis = analyse(transcriber, audio)
    except AudioError as exc:
        return _fail(session, vm, f"audio cannot be decoded: {exc}")
    except ModelUnavailableError as exc:
        # Not the voicemail's fault: it waits (and /healthz says why) until a model is there.
        log.warning("voicemail %s stays pending: %s", vm.id, exc)
        return "pending"
    _save(svc, session, vm, analysis)
    return "transcribed"


def _audio(svc: Services, session: Session, vm: Voicemail) -> bytes:
    """Our stored copy if there is one that decodes, else Twilio's (stored before use)."""
    if vm.audio_path:
        path = stored_path(svc.settings.instance_path, vm.audio_path)
        if path.is_file():
            audio = svc.vault.decrypt(path.read_bytes())
            try:
                read_header(audio)
            except AudioError:
                # A download cut short earlier: Twilio may still have the whole recording.
                if vm.provider_deleted:
                    return audio
            else:
                return audio
    if vm.provider_deleted:
        raise StoredAudioMissing("the stored audio is missing and Twilio's copy was already deleted")
    audio = svc.twilio.fetch_recording(vm.recording_sid)  # network errors propagate: RQ retries
    vm.audio_path = _store(svc, vm.id, audio)
    session.commit()
    return audio


def _store(svc: Services, voicemail_id: int, audio: bytes) -> str:
    """Write the audio encrypted (atomically, mode 600); returns its path under the instance."""
    relative = f"{AUDIO_DIR}/{voicemail_id}.wav.enc"
    target = stored_path(svc.settings.instance_path, relative)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(svc.vault.encrypt(audio))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)  # a killed job leaves the old file or the new one, never half
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        raise
    return relative


def _save(svc: Services, session: Session, vm: Voicemail, analysis: Analysis) -> None:
    result, risk = analysis.transcript, analysis.triage
    vault = svc.vault
    # Words in Vosk's own shape (word, start, end, conf), which the dashboard reads.
    words = [{"word": w.word, "start": w.start, "end": w.end, "conf": w.confidence} for w in result.words]
    vm.transcript_encrypted = vault.encrypt_text(result.text)
    vm.words_encrypted = vault.encrypt_text(json.dumps(words, ensure_ascii=False))
    vm.confidence = result.confidence
    vm.engine = result.engine
    vm.model_name = result.model_name[:120]
    vm.no_speech = result.no_speech
    # A model of another language (the Korean demo model for English) finds no risk words
    # because it cannot: its "none" is not a check, so the message ranks as unknown.
    demo = is_demo_for(result.model_name, vm.language)
    vm.risk_level = "unknown" if demo and risk.level == "none" and not result.no_speech else risk.level
    vm.risk_score = risk.score
    # Each flag with its phrase, the words heard, level (lowered when negated), confidence and time.
    vm.risk_terms_encrypted = vault.encrypt_text(json.dumps(risk.flags(), ensure_ascii=False))
    vm.failure_reason = None
    vm.status = "transcribed"
    vm.transcribed_at = utcnow()
    session.commit()
    log.info("voicemail %s transcribed (%.1f s, %d words, risk %s)", vm.id, result.duration_s,
             len(result.words), risk.level)


def _fail(session: Session, vm: Voicemail, reason: str) -> str:
    vm.status = "failed"
    vm.failure_reason = reason[:500]
    session.commit()
    log.warning("voicemail %s failed: %s", vm.id, reason)
    return "failed"


def _notify_supervisor(svc: Services, session: Session, vm: Voicemail) -> None:
    """Text the on-call supervisors (else SUPERVISOR_NUMBER) about a high-risk message, once; no caller details."""
    if vm.risk_level != "high" or vm.notified_at is not None:
        return
    # The same people a peer's "ask the supervisor" rings: whoever is on call by the rota now,
    # so a message left at 3 am reaches the person covering 3 am rather than a fixed number.
    numbers = supervisor_numbers(session, svc)
    if not numbers:
        log.warning("voicemail %s is high risk but no supervisor is on call and SUPERVISOR_NUMBER is not set; "
                    "nobody was texted", vm.id)
        return
    # Sent before it is recorded: if the worker dies in between, a retry texts again, and a
    # second text is better than none. One failed number must not stop the others; when every
    # text failed the job fails, and RQ's retry tries them all again.
    failure: TwilioGatewayError | None = None
    sent = 0
    for number in numbers:
        try:
            svc.twilio.send_sms(number, SUPERVISOR_ALERT.format(id=vm.id))
            sent += 1
        except TwilioGatewayError as exc:
            log.error("could not text the high-risk alert for voicemail %s: %s", vm.id, exc)
            failure = exc
    if not sent and failure is not None:
        raise failure
    session.execute(update(Voicemail).where(Voicemail.id == vm.id).values(notified_at=utcnow()))
    session.commit()


def _delete_provider_copy(svc: Services, session: Session, vm: Voicemail) -> None:
    """Delete Twilio's copy once ours is stored and transcribed (when configured to)."""
    if not svc.settings.delete_provider_recordings or vm.provider_deleted or not vm.audio_path:
        return
    try:
        svc.twilio.delete_recording(vm.recording_sid)
    except TwilioGatewayError as exc:
        cause = exc.__cause__
        if not (isinstance(cause, TwilioRestException) and cause.status == 404):
            raise  # RQ retries; the transcript is already saved, so the retry is quick
        # Already gone (an earlier run's delete went through before the worker died).
    vm.provider_deleted = True
    session.commit()
