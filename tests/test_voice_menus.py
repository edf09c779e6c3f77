"""The caller's path through greeting, language and menus, by keypad and by voice."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from models import Call, CallEvent, Caller
from tests.helpers import TestCaller


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
    assert said.startswith("What would you like to do?")
    for line in (
        "To talk with a peer, press 1.",
        "To hear stories from peers, press 2.",
        "To get a call back, press 3.",
        "To leave a message, press 4.",
        "press star",
        "To reach a person, press 0.",
        "press 9 for the crisis line",
    ):
        assert line in said
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
    # Safe default of the main menu: towards a person, never a hang-up.
    assert caller.twiml.find("Hangup") is None
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


def test_key_names_come_from_the_callers_language(caller: TestCaller) -> None:
    caller.call()
    caller.press("2")
    caller.to_menu()
    caller.press("#")
    assert caller.said.startswith("Perdón, numeral no es una opción aquí. Puede oprimir 1, 2, 3, 4 o 5.")
    assert "pound" not in caller.said
