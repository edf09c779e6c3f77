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


# Negation and hedging: a match is lowered to "mentioned", never hidden ---------------------

@pytest.mark.parametrize("text, level, negated_by", [
    ("i'm not suicidal", "mentioned", "not"),
    ("i would never hurt myself", "mentioned", "never"),
    ("i'm not going to kill myself i just need to talk", "mentioned", "not going to"),
    ("i don't think i want to die", "mentioned", "don't"),
    ("i'm suicidal", "high", ""),
    ("i'm not safe at home tonight", "high", ""),  # "not" is part of the phrase itself
    ("i'm not okay and i want to die", "high", ""),  # the "not" belongs to another clause
    ("no quiero morir", "mentioned", "no"),
    ("nunca me haría daño, no quiero lastimarme", "mentioned", "no quiero"),
    ("yo no me voy a matar", "mentioned", "no"),
    ("me quiero morir", "high", ""),
    ("no quiero vivir", "high", ""),  # "no" opens the phrase: not a negation of it
])
def test_negation_lowers_a_match_to_mentioned_in_both_languages(text: str, level: str, negated_by: str) -> None:
    result = triage(text)
    assert result.level == level
    assert result.matches, "a negated phrase is still shown"
    assert result.matches[-1].negated_by == negated_by
    assert result.level_ignoring_negation == "high"  # what the crisis route on a live call uses


def test_negated_and_plain_matches_together_keep_the_plain_level() -> None:
    result = triage("i'm not suicidal but i relapsed last night")
    assert result.level == "medium"
    assert [(m.category, m.level, m.category_level) for m in result.matches] == [
        ("suicide", "mentioned", "high"), ("relapse", "medium", "medium")]


def test_flags_carry_time_and_confidence_and_unsure_words_still_count() -> None:
    from transcription.engine import Word

    words = [Word("i", 0.0, 0.2, 0.99), Word("want", 0.3, 0.5, 0.95), Word("to", 0.5, 0.6, 0.97),
             Word("end", 1.0, 1.3, 0.91), Word("it", 1.3, 1.4, 0.93), Word("all", 1.4, 1.7, 0.42)]
    result = triage("i want to end it all", words=words)
    assert result.level == "high"  # "all" was unsure: still risk
    (match,) = result.matches
    assert (match.phrase, match.confidence, match.start_s, match.end_s, match.unsure) == (
        "end it all", 0.42, 1.0, 1.7, True)
    assert result.flags()[0] == {"phrase": "end it all", "text": "end it all", "category": "suicide",
                                 "level": "high", "language": "en", "category_level": "high", "negated_by": "",
                                 "conf": 0.42, "start": 1.0, "end": 1.7}


def test_an_unsure_negation_lowers_nothing() -> None:
    from transcription.engine import Word

    sure = [Word("no", 0.0, 0.2, 0.95), Word("quiero", 0.2, 0.5, 0.9), Word("morir", 0.5, 0.9, 0.9)]
    unsure = [Word("no", 0.0, 0.2, 0.3), *sure[1:]]
    assert triage("no quiero morir", words=sure).level == "mentioned"
    assert triage("no quiero morir", words=unsure).level == "high"


def test_negation_words_are_data_per_language() -> None:
    from transcription.triage import load_negations

    rules = load_negations()
    assert set(rules) == {"en", "es"}
    assert ("not",) in rules["en"].cues and ("no", "quiero") in rules["es"].cues
