"""Speech at a menu: danger is never misheard, help reaches a person, numerals are keys."""
from __future__ import annotations

import pytest

from callflows import load_flows, step
from callflows.engine import GLOBAL_WORDS, global_hints
from transcription.triage import triage

FLOWS = load_flows()


def danger(speech: str) -> bool:
    """The voicemail triage's high-risk phrases, as the webhooks use them."""
    return triage(speech).level == "high"


@pytest.mark.parametrize(("language", "speech"), [
    ("en", "I want to die"), ("en", "i took too many pills"), ("en", "I'm going to kill myself"),
    ("en", "nine one one"), ("en", "911"), ("en", "this is an emergency"), ("en", "nine"),
    ("es", "me quiero morir"), ("es", "quiero matarme"), ("es", "es una emergencia"), ("es", "nueve"),
])
def test_spoken_danger_goes_to_the_crisis_line_from_any_menu(language: str, speech: str) -> None:
    flow = FLOWS[language]
    for node in flow.nodes:
        t = step(flow, node, speech=speech, danger=danger)
        assert (t.kind, t.target) == ("action", "crisis"), (node, t)


@pytest.mark.parametrize(("language", "speech"), [
    ("en", "help"), ("en", "I need help"), ("en", "can I talk to a person"), ("en", "agent"), ("en", "operator"),
    ("es", "ayuda"), ("es", "necesito ayuda"), ("es", "una persona por favor"), ("es", "agente"),
])
def test_asking_for_help_or_a_person_reaches_a_person(language: str, speech: str) -> None:
    flow = FLOWS[language]
    t = step(flow, flow.start, speech=speech, danger=danger)
    assert (t.kind, t.target) == ("action", "person")


@pytest.mark.parametrize(("speech", "target", "key"), [
    ("1", "peer", "1"), ("one", "peer", "1"), ("2", "stories", "2"), ("four", "voicemail", "4")])
def test_a_recognizer_numeral_or_number_word_is_the_key(speech: str, target: str, key: str) -> None:
    flow = FLOWS["en"]
    t = step(flow, flow.start, speech=speech, danger=danger)
    assert (t.target, t.matched) == (target, f"speech:{key}")


def test_uno_is_a_key_in_spanish_and_words_out_of_the_menu_are_not_understood() -> None:
    flow = FLOWS["es"]
    assert step(flow, flow.start, speech="uno", danger=danger).target == "peer"
    t = step(flow, flow.start, speech="siete", danger=danger)
    assert (t.kind, t.matched) == ("invalid", "speech")


def test_without_a_danger_check_the_menu_words_still_apply() -> None:
    flow = FLOWS["en"]
    assert step(flow, flow.start, speech="I want to die").kind == "invalid"  # no phrases given
    assert step(flow, flow.start, speech="stories").target == "stories"


def test_crisis_words_come_before_person_words() -> None:
    assert list(GLOBAL_WORDS) == ["9", "0", "*"]
    flow = FLOWS["en"]
    assert step(flow, flow.start, speech="I need a person, it is an emergency").target == "crisis"


def test_speech_hints_are_per_language_but_every_language_is_understood() -> None:
    english, spanish = global_hints("en"), global_hints("es")
    assert {"crisis", "help", "person", "repeat"} <= set(english) and "ayuda" not in english
    assert {"crisis", "emergencia", "ayuda", "persona", "repetir"} <= set(spanish) and "help" not in spanish
    # Matching does not depend on the menu's language: "ayuda" on an English menu reaches a person.
    assert step(FLOWS["en"], "main", speech="ayuda").target == "person"
    assert step(FLOWS["es"], "main", speech="help").target == "person"
