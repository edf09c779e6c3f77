"""Transcribe then triage: the one sequence the worker's job and ``peerline transcribe`` share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transcription.engine import Transcriber, TranscriptResult
from transcription.triage import Triage, triage


@dataclass(frozen=True)
class Analysis:
    """A transcript and its triage."""

    transcript: TranscriptResult
    triage: Triage

    def to_dict(self) -> dict[str, Any]:
        """The full JSON shape: text, words with timings, confidence, engine, model, triage."""
        return {**self.transcript.to_dict(), "triage": self.triage.to_dict()}


def analyse(transcriber: Transcriber, audio: bytes) -> Analysis:
    """Transcribe WAV bytes and triage the text."""
    result = transcriber.transcribe(audio)
    return Analysis(result, triage(result.text, words=result.words))
