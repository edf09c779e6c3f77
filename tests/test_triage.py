"""Risk triage on sample transcripts, English and Spanish."""
from __future__ import annotations

import pytest

from transcription.triage import compile_phrase, load_phrases, triage


@pytest.mark.parametrize("text, level, categories", [
    ("i think i overdosed last night", "high", ["overdose"]),
    ("i just want to die", "high", ["want_to_die"]),
    ("sometimes i think about killing myself", "high", ["suicide"]),
    ("i have been cutting myself again", "high", ["self_harm"]),
    ("i'm not safe at home tonight", "high", ["unsafe"]),
    ("i relapsed on saturday and i need to talk", "medium", ["relapse"]),
    ("where can i get narcan for my brother", "medium", ["naloxone"]),
    ("please call me back about my appointment tomorrow", "none", []),
    ("tomé una sobredosis anoche", "high", ["overdose"]),
    ("me quiero morir", "high", ["want_to_die"]),
    ("pensé en suicidarme", "high", ["suicide"]),
    ("no me siento segura en mi casa", "high", ["unsafe"]),
    ("recaí el fin de semana", "medium", ["relapse"]),
    ("necesito naloxona", "medium", ["naloxone"]),
    ("por favor llámeme mañana", "none", []),
])
def test_levels_on_sample_transcripts(text: str, level: str, categories: list[str]) -> None:
    result = triage(text)
    assert result.level == level
    assert result.categories == categories


def test_word_boundaries_do_not_match_inside_other_words() -> None:
    # "od" is inside "good" and "period", "die" inside "diet", "narcan" must be whole.
    assert triage("good period, i am on a diet and studied the narcanistic novel").level == "none"


def test_simple_variants_case_accents_and_hyphens() -> None:
    assert triage("OVERDOSING").categories == ["overdose"]
    assert triage("Self-Harm").categories == ["self_harm"]
    # The speech engine may drop the accent, the caller's phrase list may carry it.
    assert triage("quiero hacerme dano").categories == ["self_harm"]
    assert triage("quiero hacerme daño").categories == ["self_harm"]


def test_matches_keep_the_words_for_highlighting() -> None:
    text = "Yesterday I Overdosed and now I want  to die"
    result = triage(text)
    assert [(m.text, text[m.start:m.end]) for m in result.matches] == [
        ("Overdosed", "Overdosed"), ("want  to die", "want  to die")]
    assert result.terms == ["Overdosed", "want  to die"]
    assert result.score == 6


def test_longest_phrase_wins_and_a_category_counts_once() -> None:
    result = triage("me quiero morir, me quiero morir")
    assert [m.phrase for m in result.matches] == ["me quiero morir", "me quiero morir"]
    assert result.score == 3


def test_phrase_list_covers_both_languages_for_every_category() -> None:
    phrases = load_phrases()
    for category in ("overdose", "suicide", "self_harm", "relapse", "naloxone", "unsafe", "want_to_die"):
        assert {p.language for p in phrases if p.category == category} == {"en", "es"}, category


def test_compiled_phrase_allows_any_spacing() -> None:
    assert compile_phrase("kill myself").search("i could kill\tmyself")
    assert not compile_phrase("kill myself").search("kill myselfish")
