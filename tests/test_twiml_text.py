"""What reaches a <Say>: only characters XML 1.0 carries, in pieces no longer than Twilio speaks."""
from __future__ import annotations

from lxml import etree
from twilio.twiml.voice_response import VoiceResponse

from callflows import load_flows
from ivr.twiml import MAX_SAY_CHARS, MAX_SPOKEN_CHARS, Speaker, say_pieces, speakable
from models import PeerStory
from tests.helpers import TestCaller, parse_twiml

FLOW = load_flows()["en"]


def test_speakable_drops_what_xml_cannot_carry_and_collapses_whitespace() -> None:
    assert speakable("a\x00b\x01c\x1b[31m d\x7f\x85e\ufffe\uffff\n\tf  g") == "a b c [31m d e f g"
    assert speakable("\U0001f642 \u202eevil \u05e9\u05dc\u05d5\u05dd") == "\U0001f642 \u202eevil \u05e9\u05dc\u05d5\u05dd"
    assert speakable("\x00\x01 \x1f") == ""
    assert len(speakable("word " * 10_000)) == MAX_SPOKEN_CHARS


def test_a_long_text_is_said_in_pieces_cut_between_words() -> None:
    text = " ".join(f"word{n}" for n in range(2000))  # about 17,000 characters
    pieces = say_pieces(text)
    assert all(0 < len(piece) <= MAX_SAY_CHARS for piece in pieces)
    assert " ".join(pieces) == speakable(text)  # nothing lost, no word cut
    assert say_pieces("x" * (MAX_SAY_CHARS + 5)) == ["x" * MAX_SAY_CHARS, "xxxxx"]  # one endless word is cut
    assert say_pieces("\x00 \x07") == []


def test_speaker_says_only_speakable_text_at_either_pace() -> None:
    for slow in (False, True):
        twiml = VoiceResponse()
        Speaker(FLOW, slow).say(twiml, "You pressed \x00\x1b. " + "Again. " * 1000)
        Speaker(FLOW, slow).say(twiml, "\x01\x02")  # nothing speakable: no empty <Say>
        Speaker(FLOW, slow).say_slowly(twiml, "5\x005 5")
        root = parse_twiml(str(twiml).encode())
        said = ["".join(say.itertext()) for say in root.iter("Say")]
        assert said[0].startswith("You pressed . Again. Again.")
        assert len(said) == 4 and all(len(text) <= MAX_SAY_CHARS for text in said)
        assert said[-1] == "5 5 5"


def test_a_control_character_keyed_at_a_menu_is_answered_with_valid_twiml(caller: TestCaller) -> None:
    caller.call()
    caller.press("1")
    caller.to_menu()
    for keys in ("\x1b", "\x07\x00"):  # two wrong keys (a third takes the menu's default)
        caller.press(keys)  # the document is parsed and checked against Twilio's schema
        assert caller.said.startswith("Sorry, is not a choice here. ")  # the key, unspeakable, is left out
    assert etree.tostring(caller.twiml).isascii()


def test_a_long_story_transcript_is_read_in_pieces(caller: TestCaller, db) -> None:  # type: ignore[no-untyped-def]
    db.add(PeerStory(title="A long one\x1b", topic="pain", language="en", transcript="It hurt, and then it eased. " * 400,
                     status="approved", consent_given=True))
    db.commit()
    caller.call()
    caller.press("1")
    caller.to_menu()
    caller.press("2")
    caller.press("2")  # living with pain
    says = ["".join(say.itertext()) for say in caller.gather().iter("Say")]
    assert says[0] == "Here is a story from a peer: A long one ."
    transcript = says[next(n for n, text in enumerate(says) if text.startswith("It hurt")):]  # said last
    assert len(transcript) == 4 and all(len(text) <= MAX_SAY_CHARS for text in transcript)
    assert " ".join(transcript) == ("It hurt, and then it eased. " * 400).strip()
