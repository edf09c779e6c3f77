"""What a supervisor should be told about a voicemail's transcript: whether it is a real
transcript or a demo model's guess, and why a voicemail is still waiting for one."""
from __future__ import annotations

from dataclasses import dataclass

from callflows.settings import Settings
from models import Voicemail
from transcription.modelpath import LANGUAGE_NAMES, is_demo_for, model_language
from transcription.vosk_engine import looks_like_vosk_model

DEMO_MARK = "not a real transcript: demo model"


def language_name(code: str | None) -> str:
    """'English' for 'en'; the code itself for a language without a name here."""
    return LANGUAGE_NAMES.get((code or "en")[:2], code or "unknown")


@dataclass(frozen=True)
class SpeechView:
    """How the pages present one voicemail's transcript."""

    demo: bool  # the model does not speak the voicemail's language: its words are not a transcript
    demo_note: str  # the sentence that says so, naming the model and both languages
    waiting_note: str  # why a pending voicemail waits ('' when it is not waiting for a model)
    text_lang: str  # the language of the words shown (the model's, for a demo transcript)

    @property
    def risk_unknown(self) -> bool:
        """True when "no risk words" would be a claim the transcript cannot support."""
        return self.demo


def speech_view(vm: Voicemail, settings: Settings) -> SpeechView:
    """The demo marking and the waiting reason of a voicemail."""
    language = (vm.language or "en")[:2]
    demo = vm.status == "transcribed" and bool(vm.model_name) and is_demo_for(vm.model_name or "", language)
    demo_note = ""
    text_lang = language
    if demo:
        spoken = model_language(vm.model_name or "")
        text_lang = spoken or language
        demo_note = (f"{DEMO_MARK[0].upper()}{DEMO_MARK[1:]} ({vm.model_name} speaks {language_name(spoken)}, "
                     f"this message is in {language_name(language)}). Listen to the recording.")
    waiting_note = ""
    if vm.status == "pending":
        path = settings.model_path_for(language)
        variable = f"VOSK_MODEL_PATH_{language.upper()}"
        if not path:
            waiting_note = (f"Waiting for a {language_name(language)} speech model: it is transcribed once "
                            f"{variable} (or VOSK_MODEL_PATH) is set and the worker restarted.")
        elif not looks_like_vosk_model(path):
            waiting_note = (f"Waiting for the {language_name(language)} speech model: there is no model where "
                            f"{variable} (or VOSK_MODEL_PATH) points.")
    return SpeechView(demo, demo_note, waiting_note, text_lang)
