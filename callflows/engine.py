"""The pure call-flow engine: ``step(flow, node_id, digits, speech, attempt) -> Transition``.

No I/O, no clock: the same input always gives the same transition, so it is trivial to test.

Speech is matched in this order, so that a caller in danger is never misheard as a menu
choice: danger (the ``danger`` predicate the caller passes in, e.g. the voicemail triage's
high-risk phrases, and the words for the crisis line) goes to the crisis line; the words for
a person or for help go to a person; "repeat"; then the menu's own words; then numerals.
The words that work everywhere are understood in every language we ship, whatever the menu's
language (a Spanish speaker on an English menu still reaches the crisis line by voice).

The first question picks a language (:func:`choose_language`); it never picks one by itself:
a caller who says nothing has not chosen, and the webhooks go on without saving a language.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Literal

from callflows.loader import GLOBAL_KEYS, Flow, Menu

Kind = Literal["node", "action", "repeat", "no_input", "invalid"]

# Spoken words for the keys that work everywhere, per language (the speech hints of a menu
# use its language's words); the crisis line first, so that "I need a person, it's an
# emergency" reaches the crisis line.
GLOBAL_WORDS_BY_LANGUAGE = {
    "en": {
        "9": ("crisis", "emergency", "suicide", "suicidal", "911", "9 1 1", "nine one one"),
        "0": ("operator", "person", "human", "agent", "representative", "help", "somebody"),
        "*": ("repeat", "again", "say that again"),
    },
    "es": {
        "9": ("crisis", "emergencia", "suicidio", "suicida", "nueve uno uno"),
        "0": ("persona", "operador", "operadora", "agente", "ayuda", "alguien"),
        "*": ("repetir", "repita", "otra vez"),
    },
}
# Every language's words for each key: what the engine matches, whatever the menu's language.
GLOBAL_WORDS = {
    key: tuple(dict.fromkeys(w for words in GLOBAL_WORDS_BY_LANGUAGE.values() for w in words[key]))
    for key in ("9", "0", "*")
}
# The first question: keys, and the words that name each language. Spanish is checked first,
# and "no hablo inglés" (I do not speak English) names Spanish, not English.
LANGUAGE_KEYS = {"1": "en", "2": "es"}
LANGUAGE_WORDS = {
    "es": ("no hablo ingles", "no se ingles", "no english", "espanol", "spanish", "castellano"),
    "en": ("english", "ingles"),
}
_DIGIT_WORDS = {
    "1": ("1", "one", "uno"), "2": ("2", "two", "dos"), "3": ("3", "three", "tres"),
    "4": ("4", "four", "cuatro"), "5": ("5", "five", "cinco"), "6": ("6", "six", "seis"),
    "7": ("7", "seven", "siete"), "8": ("8", "eight", "ocho"), "9": ("9", "nine", "nueve"),
    "0": ("0", "zero", "cero"),
}
DangerCheck = Callable[[str], bool]


def never(_speech: str) -> bool:
    """A danger check that finds nothing (for callers of the engine that have no phrases)."""
    return False
NO_INPUT_RETRIES = 1  # repeat once in simpler words, then the node's safe default
INVALID_RETRIES = 2


@dataclass(frozen=True)
class Transition:
    """Where the call goes next and why.

    ``kind`` is "node" (go to ``target`` menu), "action" (the app carries out ``target``),
    "repeat" (say the same menu again), "no_input" or "invalid" (re-ask the same menu,
    ``attempt`` counts tries so far; ``simpler`` asks for the simpler wording). ``default``
    is True when the menu's safe default is taken because no answer came (the caller is told
    first, with the menu's ``default_note``).
    """

    kind: Kind
    target: str
    attempt: int = 0
    simpler: bool = False
    matched: str | None = None
    default: bool = False


def _fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " " + re.sub(r"[^a-z0-9 ]+", " ", text).strip() + " "


def _contains(folded: str, phrase: str) -> bool:
    return f" {_fold(phrase).strip()} " in folded


def means_crisis(speech: str, danger: DangerCheck = never) -> bool:
    """True when spoken words ask for the crisis line, whatever the menu (danger, the crisis words, "nine")."""
    if danger(speech):
        return True
    folded = _fold(speech)
    return any(_contains(folded, w) for w in (*GLOBAL_WORDS["9"], *_DIGIT_WORDS["9"]))


def global_hints(language: str) -> tuple[str, ...]:
    """The words for the keys that work everywhere, in ``language`` (every language's when unknown)."""
    words = GLOBAL_WORDS_BY_LANGUAGE.get(language)
    if words is None:
        return tuple(w for key in GLOBAL_WORDS for w in GLOBAL_WORDS[key])
    return tuple(w for key in GLOBAL_WORDS for w in words[key] if not any(c.isdigit() for c in w))


def spoken_global_key(speech: str) -> str | None:
    """The key that works everywhere (9, 0 or *) that spoken words ask for, in any language, or None."""
    folded = _fold(speech)
    for key, words in GLOBAL_WORDS.items():
        if any(_contains(folded, w) for w in words):
            return key
    return None


def match_speech(menu: Menu, speech: str, danger: DangerCheck = never) -> str | None:
    """The key that spoken words choose in ``menu`` (9 for danger), or None."""
    if danger(speech):
        return "9"
    key = spoken_global_key(speech)
    if key is not None:
        return key
    folded = _fold(speech)
    for option in menu.options:
        if any(_contains(folded, w) for w in option.speech):
            return option.key
    for key, words in _DIGIT_WORDS.items():
        # "nine" means what pressing 9 means: the keys that work everywhere count too.
        if (menu.option_for_key(key) or key in GLOBAL_KEYS) and any(_contains(folded, w) for w in words):
            return key
    return None


def _go(target: str, matched: str, default: bool = False) -> Transition:
    if target.startswith("action:"):
        return Transition("action", target.removeprefix("action:"), matched=matched, default=default)
    return Transition("node", target, matched=matched, default=default)


def step(
    flow: Flow,
    node_id: str,
    digits: str | None = None,
    speech: str | None = None,
    attempt: int = 0,
    danger: DangerCheck = never,
) -> Transition:
    """Decide the next move from ``node_id`` given what the caller pressed or said."""
    menu = flow.nodes[node_id]
    key = (digits or "").strip()[:1] or None
    heard_speech = bool(speech and speech.strip())
    if key is None and heard_speech:
        key = match_speech(menu, speech or "", danger)
        if key is None:
            return _invalid(menu, attempt, "speech")
    if key is None:
        if attempt >= NO_INPUT_RETRIES:
            return _go(menu.default, "no-input", default=True)
        return Transition("no_input", node_id, attempt=attempt + 1, simpler=True)
    source = f"speech:{key}" if heard_speech and not digits else key
    if key == "*":
        return Transition("repeat", node_id, matched=source)
    if key in GLOBAL_KEYS:
        return _go(GLOBAL_KEYS[key], source)
    option = menu.option_for_key(key)
    if option is None:
        return _invalid(menu, attempt, key)
    return _go(option.target, source)


def _invalid(menu: Menu, attempt: int, what: str) -> Transition:
    # A wrong answer is never met with fewer choices: every option is said again, with its name.
    if attempt >= INVALID_RETRIES:
        return _go(menu.default, f"invalid:{what}", default=True)
    return Transition("invalid", menu.id, attempt=attempt + 1, matched=what)


def names_language(speech: str) -> str | None:
    """The language that spoken words name ("español", "Spanish", "inglés", "English"), or None."""
    folded = _fold(speech)
    for language, words in LANGUAGE_WORDS.items():
        if any(_contains(folded, w) for w in words):
            return language
    return None


def choose_language(digits: str, speech: str) -> str | None:
    """The language the first question's answer picks (1 or 2, a language's name, a numeral), or None: never a default."""
    if digits:
        return LANGUAGE_KEYS.get(digits[:1])
    if not speech.strip():
        return None
    named = names_language(speech)
    if named is not None:
        return named
    folded = _fold(speech)
    for key, language in LANGUAGE_KEYS.items():
        if any(_contains(folded, w) for w in _DIGIT_WORDS[key]):
            return language
    return None


def language_hints() -> tuple[str, ...]:
    """Speech hints for the first question: each language's name in both languages, and the numerals."""
    return ("English", "inglés", "español", "Spanish", "one", "two", "uno", "dos")
