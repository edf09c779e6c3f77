"""The exceptions of the ``transcription`` package, under one base.

- :class:`TranscriptionError`: base class of everything raised here.
- :class:`AudioError`: the audio cannot be decoded, so retrying the same bytes will not help:
  :class:`CorruptAudioError` (not a WAV file we can read), :class:`TruncatedAudioError` (the
  file ends before the header says it should, e.g. a download cut short) and
  :class:`UnsupportedAudioError` (a WAV encoding we do not decode, e.g. ADPCM).
- :class:`ModelUnavailableError`: the speech model is not configured, or is not where the
  configuration says, so the work should wait for it.

Modules inside :mod:`transcription` import these from here, never from the package's
``__init__`` (which imports them, so ``from transcription import AudioError`` still works).
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
