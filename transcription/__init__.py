"""Offline voicemail transcription: audio decoding, the Transcriber protocol, Vosk, triage.

Plain Python: never imports Flask or :mod:`ivr`, so it runs in a worker, a CLI or a test.

Exceptions (one tree, defined in :mod:`transcription.errors` and re-exported here):
:class:`TranscriptionError` is the base; :class:`AudioError` (the audio cannot be decoded:
:class:`CorruptAudioError`, :class:`TruncatedAudioError`, :class:`UnsupportedAudioError`)
means retrying the same bytes will not help; :class:`ModelUnavailableError` means the speech
model is not configured or not where the configuration says, so the work should wait for it.
"""
from __future__ import annotations

from transcription.engine import Transcriber, TranscriptResult, Word
from transcription.errors import (
    AudioError,
    CorruptAudioError,
    ModelUnavailableError,
    TranscriptionError,
    TruncatedAudioError,
    UnsupportedAudioError,
)
from transcription.triage import Triage, triage
from transcription.vosk_engine import VoskTranscriber

__all__ = [
    "AudioError", "CorruptAudioError", "ModelUnavailableError", "TranscriptResult", "Transcriber",
    "TranscriptionError", "Triage", "TruncatedAudioError", "UnsupportedAudioError", "VoskTranscriber",
    "Word", "triage",
]
