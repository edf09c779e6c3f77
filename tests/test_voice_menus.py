"""The caller's path through greeting, language and menus, by keypad and by voice."""
from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from callflows.calls import EVENT_DETAIL_CHARS, EVENT_INPUT_CHARS
from models import Call, CallEvent, Caller
from tests.helpers import TestCaller

GREETING = "Welcome to Peer Line. You are not alone. This call is free, and you do not have to give your name."
SALUDO = "Bienvenido a Peer Line. No está solo. Esta llamada es gratis y no tiene que dar su nombre."
QUESTION = ("Para español, oprima 2. For English, press 1. "
            "If you are in crisis, press 9. Si está en crisis, oprima 9.")
FULL_KEYS = ("To hear this again, press star. For a person, press 0. "
             "If you are in danger or thinking of suicide, press 9 for the crisis line.")
SHORT_KEYS = "Star repeats. 9 for the crisis line."
MAIN_OPTIONS = ("To talk with a peer, press 1. To hear stories from peers, press 2. To get a call back, press 3. "
                "To leave a message, press 4. To slow down my voice or change language, press 5.")
STORY_OPTIONS = ("Which stories would you like to hear? "
                 "For recovery with medication, like buprenorphine or methadone, press 1. "
                 "For living with pain, press 2. For feeling lonely, press 3. For dealing with stigma, press 4. "
                 "To go back, press 5.")
SWITCH = "Seguimos en inglés. Para español, oprima 8 o diga español, en cualquier momento."


def says(caller: TestCaller) -> list[tuple[str | None, str]]:
    """Each <Say> of the current menu: its language and its words."""
    assert caller.twiml is not None
    return [(say.get("language"), " ".join(say.itertext()).strip()) for say in caller.twiml.iter("Say")]


def test_first_call_offers_spanish_in_the_first_sentence(caller: TestCaller) -> None:
    caller.call()
    gather = caller.gather()
    assert gather.get("input") == "dtmf speech"
    assert int(gather.get("timeout")) >= 8
    assert gather.get("numDigits") == "1"
    # Three words, then Spanish is offered: the line's name, then each language in its own voice.
    assert says(caller) == [
        ("en-US", "Peer support line."),
        ("es-US", "Para español, oprima 2."),
        ("en-US", "For English, press 1."),
        ("en-US", "If you are in crisis, press 9."),
        ("es-US", "Si está en crisis, oprima 9."),
    ]
    # One recognizer per question (Twilio's limit): hints name each language in both languages.
    hints = gather.get("hints").split(", ")
    for word in ("English", "inglés", "español", "Spanish", "uno", "dos", "help", "ayuda"):
        assert word in hints


def test_main_menu_names_each_option_before_its_key(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    said = caller.said
    # Greeted in the language just chosen, then the first menu, with the full block of keys.
    assert said == f"{GREETING} What would you like to do? {MAIN_OPTIONS} {FULL_KEYS}"
    gather = caller.gather()
    assert "peer" in gather.get("hints")
    assert gather.get("actionOnEmptyResult") == "true"


def test_language_is_remembered_for_the_next_call(caller: TestCaller, client: Any, db: Any) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    assert caller.said.startswith(f"{SALUDO} ¿Qué desea hacer?")
    assert caller.said.endswith("Para oír esto otra vez, oprima asterisco. Para hablar con una persona, oprima 0. "
                                "Si está en peligro o piensa en el suicidio, oprima 9 para la línea de crisis.")
    again = TestCaller(client, number=caller.number)
    again.call()
    # No language question the second time: greeted in Spanish, straight to the menu.
    assert again.said.startswith("Bienvenido a Peer Line.")
    again.follow()
    assert "Para hablar con un par, oprima 1." in again.said
    stored = db.scalar(select(Caller))
    assert stored.language == "es"
    assert caller.number.encode() not in stored.number_encrypted
    assert len(stored.number_hash) == 64


def test_speech_chooses_an_option(caller: TestCaller) -> None:
    caller.call()
    caller.say("English please")
    caller.to_menu()
    caller.say("I would like to hear a story")
    assert caller.said.startswith("Which stories would you like to hear?")


def test_star_repeats_the_menu(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    first = caller.to_menu()
    assert caller.said == f"{GREETING} What would you like to do? {MAIN_OPTIONS} {FULL_KEYS}"
    caller.press("*")
    # The menu again, keys in full (asking to hear it again is asking for all of it), not the greeting.
    assert caller.said == f"What would you like to do? {MAIN_OPTIONS} {FULL_KEYS}"
    assert caller.gather().get("action") == first.find("Gather").get("action")


def test_no_input_repeats_once_simpler_then_takes_the_safe_default(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.silence()
    assert caller.said.startswith("I did not hear anything. Let's try again.")
    assert "To talk with a peer, press 1." in caller.said
    assert "To leave a message" not in caller.said  # simpler: one option, not five
    caller.silence()
    # Safe default of the main menu: towards a person, never a hang-up; the caller is told first.
    assert caller.said == "I'll find a peer for you now."
    assert caller.twiml.find("Hangup") is None
    caller.follow()
    assert "No peer can answer right now." in caller.said


def test_wrong_key_says_what_is_possible(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("8")
    assert caller.said.startswith("Sorry, 8 is not a choice here. You can press 1, 2, 3, 4 or 5.")
    assert caller.twiml.find("Hangup") is None


def test_nine_dials_the_crisis_line_from_any_menu(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("2")  # stories menu
    caller.press("9")
    number = caller.twiml.find("Dial/Number")
    assert number is not None and number.text == "988"
    assert "crisis line" in caller.said


def test_crisis_number_is_configurable(app_config, client) -> None:  # type: ignore[no-untyped-def]
    from ivr import create_app

    app_config["crisis_number"] = "+18005550000"
    caller = TestCaller(create_app(app_config).test_client())
    caller.call()
    caller.press("9")
    assert caller.twiml.find("Dial/Number").text == "+18005550000"


def test_slower_pace_is_chosen_and_remembered(caller: TestCaller, client: Any) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("5")
    caller.press("1")
    assert "I will speak more slowly" in caller.said
    caller.to_menu()
    assert caller.twiml.find("Gather/Say/prosody").get("rate") == "80%"
    assert int(caller.gather().get("timeout")) > 10
    again = TestCaller(client, number=caller.number)
    again.call()
    assert again.twiml.find("Say/prosody") is not None


def test_menu_path_is_recorded_with_times(caller: TestCaller, db: Any) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("2")
    call = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    events = db.scalars(select(CallEvent).where(CallEvent.call_id == call.id).order_by(CallEvent.id)).all()
    assert [(e.node, e.input) for e in events] == [("incoming", None), ("language", "1"), ("main", "2")]
    assert all(e.at is not None for e in events)


# Language: never saved unless chosen; Spanish early, by key or by voice -----------------------


def test_a_silent_caller_goes_on_in_both_languages_and_nothing_is_saved(caller: TestCaller, client: Any,
                                                                         db: Any) -> None:
    caller.call()
    caller.silence()
    # Asked again in both languages (without the line's name this time).
    assert caller.said == QUESTION
    caller.silence()
    # Then the call goes on: one line in Spanish first, then the English greeting and menu.
    lines = says(caller)
    assert lines[0] == ("es-US", SWITCH)
    assert caller.said == f"{SWITCH} {GREETING} What would you like to do? {MAIN_OPTIONS} {FULL_KEYS}"
    # The menus work as usual; later menus give the short reminder and no Spanish line.
    caller.press("2")
    assert caller.said == f"{STORY_OPTIONS} {SHORT_KEYS}"
    stored = db.scalar(select(Caller))
    assert stored.language is None  # a default taken after silence is never the caller's language
    call = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    assert call.language is None
    event = db.scalar(select(CallEvent).where(CallEvent.node == "language"))
    assert (event.input, event.detail) == ("no-input", "en, not chosen")
    # The next call asks again.
    again = TestCaller(client, number=caller.number)
    again.call()
    assert again.said == f"Peer support line. {QUESTION}"


@pytest.mark.parametrize(("how", "answer"), [("press", "8"), ("say", "español")])
def test_a_caller_who_did_not_choose_switches_to_spanish_at_any_menu(caller: TestCaller, client: Any, db: Any,
                                                                     how: str, answer: str) -> None:
    caller.call()
    caller.silence()
    caller.silence()
    caller.press("2")  # the English story menu
    getattr(caller, how)(answer)
    # The same menu in Spanish, greeted in Spanish; now it is chosen, and remembered.
    assert caller.said.startswith(f"{SALUDO} ¿Qué historias quiere oír?")
    assert "Para volver, oprima 5." in caller.said
    assert "undecided" not in caller.gather().get("action")
    assert db.scalar(select(Caller)).language == "es"
    again = TestCaller(client, number=caller.number)
    again.call()
    assert again.said.startswith(SALUDO)


@pytest.mark.parametrize("speech", ["español", "Spanish please", "no hablo inglés", "dos"])
def test_spanish_is_chosen_by_voice_at_the_first_question(caller: TestCaller, db: Any, speech: str) -> None:
    caller.call()
    caller.say(speech)
    assert caller.said.startswith(f"{SALUDO} ¿Qué desea hacer?")
    assert caller.gather().get("language") == "es-US"
    assert db.scalar(select(Caller)).language == "es"
    event = db.scalar(select(CallEvent).where(CallEvent.node == "language"))
    assert (event.input, event.detail) == ("speech", "es")


def test_asking_for_help_at_the_first_question_reaches_a_person(caller: TestCaller, db: Any) -> None:
    caller.call()
    caller.say("I need help")
    # Straight to a person (here nobody is on shift, so the way to a call back or a message).
    assert caller.said.startswith("We are sorry. No peers are on shift right now")
    assert db.scalar(select(Caller)).language is None


def test_changing_language_and_saying_nothing_keeps_the_language(caller: TestCaller, db: Any) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("5")  # ajustes
    caller.press("3")  # cambiar de idioma
    assert caller.said == QUESTION  # no line name: the caller is already in a call
    caller.silence()
    caller.silence()
    assert caller.said.startswith("Muy bien. Sigo en español. ¿Qué desea hacer?")
    assert db.scalar(select(Caller)).language == "es"


# Menus that forgive --------------------------------------------------------------------------


def test_later_menus_give_a_short_reminder_of_the_keys(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    assert caller.said.endswith(FULL_KEYS)
    caller.press("2")
    assert caller.said == f"{STORY_OPTIONS} {SHORT_KEYS}"
    caller.press("5")  # back, the same key in every menu that has a way back
    assert caller.said == f"What would you like to do? {MAIN_OPTIONS} {SHORT_KEYS}"
    caller.press("5")
    assert caller.said == ("Settings. To slow down my voice, press 1. For my usual pace, press 2. "
                           f"To change language, press 3. To go back, press 5. {SHORT_KEYS}")


def test_a_wrong_key_gets_the_full_block_and_a_second_every_option_then_the_default_is_announced(
        caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("2")
    caller.press("6")
    assert caller.said == (f"Sorry, 6 is not a choice here. You can press 1, 2, 3, 4 or 5. {STORY_OPTIONS} "
                           f"{FULL_KEYS}")
    caller.press("6")
    # The second error: every option again, each with its name (never fewer choices).
    assert caller.said == f"Sorry, 6 is not a choice here. {STORY_OPTIONS} {FULL_KEYS}"
    caller.press("6")
    # The third: the safe default, said before it is taken.
    assert caller.said.startswith("I'll take you back to the main menu now. What would you like to do?")
    assert caller.said.endswith(SHORT_KEYS)


def test_key_names_come_from_the_callers_language(caller: TestCaller) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("#")
    assert caller.said.startswith("Perdón, numeral no es una opción aquí. Puede oprimir 1, 2, 3, 4 o 5.")
    assert "pound" not in caller.said


def test_slow_pace_pauses_between_the_lines_of_a_menu(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("5")
    caller.press("1")
    caller.to_menu()
    children = list(caller.gather())
    tags = [child.tag for child in children]
    # Prompt, five options, the keys: seven lines, a one-second pause between each two.
    assert tags == ["Say", "Pause"] * 6 + ["Say"]
    assert {child.get("length") for child in children if child.tag == "Pause"} == {"1"}
    caller.press("2")  # stories, still slow
    assert [c.tag for c in caller.gather()].count("Pause") == 6


def test_every_menu_hints_the_words_that_work_everywhere_in_its_language(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    hints = caller.gather().get("hints").split(", ")
    for word in ("peer", "crisis", "emergency", "help", "person", "repeat"):
        assert word in hints
    assert "ayuda" not in hints
    spanish = TestCaller(caller.client, number="+15555550123")
    spanish.call()
    spanish.press("2")
    spanish.to_menu()
    hints = spanish.gather().get("hints").split(", ")
    for word in ("par", "crisis", "emergencia", "ayuda", "persona", "repetir"):
        assert word in hints


def test_keys_are_recorded_as_every_database_holds_them(caller: TestCaller, db: Any) -> None:
    columns = CallEvent.__table__.c
    assert (EVENT_INPUT_CHARS, EVENT_DETAIL_CHARS) == (getattr(columns.input.type, "length"),
                                                       getattr(columns.detail.type, "length"))
    caller.call()
    caller.press("1" + "7\x00" * 100)  # English (the first key chooses); the keys are what was received
    call = db.scalar(select(Call).where(Call.call_sid == caller.call_sid))
    event = db.scalar(select(CallEvent).where(CallEvent.call_id == call.id, CallEvent.node == "language"))
    # PostgreSQL refuses a longer value, and a NUL character in any
    assert (event.input, event.detail) == ("1" + "7" * (EVENT_INPUT_CHARS - 1), "en")
