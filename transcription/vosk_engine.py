"""The default engine: Vosk (Kaldi) running offline, so a caller's voice never leaves the server.

The model is loaded once, on first use, and then shared by every job of the process; each
transcription gets its own recognizer, so one instance is safe to reuse (and to share
between threads).
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import vosk

from transcription.errors import ModelUnavailableError
from transcription.audio import pcm16_chunks, read_header
from transcription.engine import TranscriptResult, Word


def looks_like_vosk_model(path: str | Path) -> bool:
    """True when ``path`` is a folder laid out like a Vosk model."""
    folder = Path(path)
    return folder.is_dir() and ((folder / "am").is_dir() or (folder / "conf").is_dir())


def model_display_name(path: str | Path) -> str:
    """A readable model name: the folder's name (its package's for a packaged ``model`` folder)."""
    folder = Path(path)
    return folder.parent.name if folder.name == "model" else folder.name


class VoskTranscriber:
    """Vosk speech recognition for WAV bytes; loads its model once, lazily."""

    engine = "vosk"

    def __init__(self, model_path: str | Path, chunk_s: float = 0.5, language: str = "") -> None:
        self.model_path = str(model_path or "")
        self.chunk_s = chunk_s
        self.language = language  # the language it serves, for the messages when it is missing
        self.loads = 0  # how many times this instance built a model (once, if all goes well)
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def model_name(self) -> str:
        """The model folder's name."""
        return model_display_name(self.model_path) if self.model_path else ""

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    def check(self) -> None:
        """Load the model now if needed; raise :class:`ModelUnavailableError` if it cannot be."""
        self._get_model()

    def _get_model(self) -> Any:
        if self._model is not None:
            return self._model
        with self._lock:
            if self._model is None:
                variable = f"VOSK_MODEL_PATH_{self.language.upper()}" if self.language else "VOSK_MODEL_PATH"
                if not self.model_path:
                    raise ModelUnavailableError(
                        f"no speech model configured: set {variable} or VOSK_MODEL_PATH (or run `peerline models`)")
                if not looks_like_vosk_model(self.model_path):
                    where = f"{variable} or VOSK_MODEL_PATH" if self.language else "VOSK_MODEL_PATH"
                    raise ModelUnavailableError(f"no Vosk model at {where}={self.model_path}")
                vosk.SetLogLevel(-1)  # Kaldi's chatter would drown the worker's log
                try:
                    model = vosk.Model(self.model_path)
                except Exception as exc:  # vosk raises a bare Exception when the model files are bad
                    raise ModelUnavailableError(f"the Vosk model at {self.model_path} cannot be loaded: {exc}") from exc
                self.loads += 1
                # A failure is not remembered: a model put in place later is picked up by the next job.
                self._model = model
        return self._model

    def transcribe(self, audio: bytes) -> TranscriptResult:
        """Decode WAV bytes in chunks and return text, timed words and confidence."""
        info = read_header(audio)  # bad audio is reported before the model is even needed
        model = self._get_model()
        recognizer = vosk.KaldiRecognizer(model, float(info.output_rate))
        recognizer.SetWords(True)
        texts: list[str] = []
        words: list[Word] = []

        def collect(raw: str) -> None:
            # Each finished utterance is taken out of the recognizer as it ends, so the
            # decoder never holds more than the current utterance of a long message.
            result = json.loads(raw)
            if result.get("text"):
                texts.append(result["text"])
            for item in result.get("result", []):
                words.append(Word(item["word"], round(float(item["start"]), 3), round(float(item["end"]), 3),
                                  round(float(item.get("conf", 1.0)), 4)))

        for chunk in pcm16_chunks(audio, info, chunk_s=self.chunk_s):
            if recognizer.AcceptWaveform(chunk):
                collect(recognizer.Result())
        collect(recognizer.FinalResult())
        return TranscriptResult(
            text=" ".join(texts), words=words, duration_s=round(info.duration_s, 3), engine=self.engine,
            model_name=self.model_name, sample_rate=info.sample_rate, channels=info.channels,
        )
