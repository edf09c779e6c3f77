"""The engine-neutral shape of a transcription: the :class:`Transcriber` protocol and its result."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Word:
    """One recognised word with its timing (seconds from the start) and confidence (0..1)."""

    word: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class TranscriptResult:
    """What a transcriber returns for one recording."""

    text: str
    words: list[Word]
    duration_s: float
    engine: str
    model_name: str
    sample_rate: int = 0
    channels: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def confidence(self) -> float | None:
        """Mean word confidence, or None when nothing was recognised."""
        if not self.words:
            return None
        return sum(w.confidence for w in self.words) / len(self.words)

    @property
    def no_speech(self) -> bool:
        """True when the recording held no recognisable speech (silence, a hang-up)."""
        return not self.text.strip()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with the words, timings and summary fields."""
        data = asdict(self)
        data["confidence"] = self.confidence
        data["no_speech"] = self.no_speech
        return data


@runtime_checkable
class Transcriber(Protocol):
    """Turns WAV bytes into text. One instance serves many jobs of one process."""

    engine: str

    @property
    def model_name(self) -> str:
        """A human name of the loaded (or configured) model."""
        ...

    def check(self) -> None:
        """Raise :class:`transcription.errors.ModelUnavailableError` if the model cannot be used."""
        ...

    def transcribe(self, audio: bytes) -> TranscriptResult:
        """Transcribe a WAV file given as bytes."""
        ...
