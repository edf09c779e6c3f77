"""Offline voicemail transcription: audio decoding, the Transcriber protocol, Vosk, triage.

Plain Python: never imports Flask or :mod:`ivr`, so it runs in a worker, a CLI or a test.

Exceptions (one tree): :class:`TranscriptionError` is the base;
:class:`AudioError` (the audio cannot be decoded: :class:`CorruptAudioError`,
:class:`TruncatedAudioError`, :class:`UnsupportedAudioError`) means retrying the same bytes
will not help; :class:`ModelUnavailableError` means the speech model is not configured or
not where the configuration says, so the work should wait for it.
"""
from __future__ import annotations


class TranscriptionError(Exception):
    """Base of every error raised by :mod:`transcription`."""


class AudioError(TranscriptionError):
    """The audio cannot be decoded."""


class CorruptAudioError(AudioError):
    """The bytes are not a WAV file we can read (bad header, missing chunks)."""


class TruncatedAudioError(AudioError):
    """The WAV header promises more audio than the file holds (a download cut short)."""


class UnsupportedAudioError(AudioError):
    """A WAV encoding we do not decode (e.g. ADPCM)."""


class ModelUnavailableError(TranscriptionError):
    """No speech model is configured, or the configured path holds no Vosk model."""


from transcription.engine import Transcriber, TranscriptResult, Word  # noqa: E402
from transcription.triage import Triage, triage  # noqa: E402
from transcription.vosk_engine import VoskTranscriber  # noqa: E402

__all__ = [
    "AudioError", "CorruptAudioError", "ModelUnavailableError", "TranscriptResult", "Transcriber",
    "TranscriptionError", "Triage", "TruncatedAudioError", "UnsupportedAudioError", "VoskTranscriber",
    "Word", "triage",
]
