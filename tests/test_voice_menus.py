"""The caller's path through greeting, language and menus, by keypad and by voice."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Call, CallEvent, Caller
from tests.helpers import TestCaller

FULL_KEYS = ("To hear this again, press star. For a person, press 0. "
             "If you are in danger or thinking of suicide, press 9 for the crisis line.")
SHORT_KEYS = "Star repeats. 9 for the crisis line."
MAIN_OPTIONS = ("To talk with a peer, press 1. To hear stories from peers, press 2. To get a call back, press 3. "
                "To leave a message, press 4. To slow down my voice or change language, press 5.")
STORY_OPTIONS = ("Which stories would you like to hear? "
                 "For recovery with medication, like buprenorphine or methadone, press 1. "
                 "For living with pain, press 2. For feeling lonely, press 3. For dealing with stigma, press 4. "
                 "To go back, press 5.")


def test_first_call_asks_language_in_both_languages(caller: TestCaller) -> None:
    root = caller.call()
    gather = caller.gather()
    assert gather.get("input") == "dtmf speech"
    assert int(gather.get("timeout")) >= 8
    assert gather.get("numDigits") == "1"
    assert "For English, press 1." in caller.said
    assert "Para español, oprima 2." in caller.said
    says = root.findall("Gather/Say")
    assert {s.get("language") for s in says} == {"en-US", "es-US"}


def test_main_menu_names_each_option_before_its_key(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    said = caller.said
    # The first menu of the call: every option named before its key, and the full block of keys.
    assert said == f"What would you like to do? {MAIN_OPTIONS} {FULL_KEYS}"
    gather = caller.gather()
    assert "peer" in gather.get("hints")
    assert gather.get("actionOnEmptyResult") == "true"


def test_language_is_remembered_for_the_next_call(caller: TestCaller, client: Any, db: Any) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    assert caller.said.startswith("¿Qué desea hacer?")
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
    text = caller.said
    caller.press("*")
    assert caller.said == text
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


def test_key_names_come_from_the_callers_language(caller: TestCaller) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("#")
    assert caller.said.startswith("Perdón, numeral no es una opción aquí. Puede oprimir 1, 2, 3, 4 o 5.")
    assert "pound" not in caller.said
