"""The pure call-flow engine: ``step(flow, node_id, digits, speech, attempt) -> Transition``.

No I/O, no clock: the same input always gives the same transition, so it is trivial to test.

Speech is matched in this order, so that a caller in danger is never misheard as a menu
choice: danger (the ``danger`` predicate the caller passes in, e.g. the voicemail triage's
high-risk phrases, and the words for the crisis line) goes to the crisis line; the words for
a person or for help go to a person; "repeat"; then the menu's own words; then numerals.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Callable, Literal

from callflows.loader import GLOBAL_KEYS, Flow, Menu

Kind = Literal["node", "action", "repeat", "no_input", "invalid"]

# Spoken words for the keys that work everywhere, in the languages we ship; the crisis line
# first, so that "I need a person, it's an emergency" reaches the crisis line.
GLOBAL_WORDS = {
    "9": ("crisis", "emergency", "suicide", "suicidal", "911", "9 1 1", "nine one one",
          "emergencia", "suicidio", "nueve uno uno"),
    "0": ("operator", "person", "human", "agent", "representative", "help", "somebody",
          "persona", "operador", "operadora", "agente", "ayuda", "alguien"),
    "*": ("repeat", "again", "say that again", "repetir", "otra vez"),
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
    ``attempt`` counts tries so far; ``simpler`` asks for the simpler wording).
    """

    kind: Kind
    target: str
    attempt: int = 0
    simpler: bool = False
    matched: str | None = None


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


def match_speech(menu: Menu, speech: str, danger: DangerCheck = never) -> str | None:
    """The key that spoken words choose in ``menu`` (9 for danger), or None."""
    if danger(speech):
        return "9"
    folded = _fold(speech)
    for key, words in GLOBAL_WORDS.items():
        if any(_contains(folded, w) for w in words):
            return key
    for option in menu.options:
        if any(_contains(folded, w) for w in option.speech):
            return option.key
    for key, words in _DIGIT_WORDS.items():
        # "nine" means what pressing 9 means: the keys that work everywhere count too.
        if (menu.option_for_key(key) or key in GLOBAL_KEYS) and any(_contains(folded, w) for w in words):
            return key
    return None


def _go(target: str, matched: str) -> Transition:
    if target.startswith("action:"):
        return Transition("action", target.removeprefix("action:"), matched=matched)
    return Transition("node", target, matched=matched)


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
            return _go(menu.default, "no-input")
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
    if attempt >= INVALID_RETRIES:
        return _go(menu.default, f"invalid:{what}")
    return Transition("invalid", menu.id, attempt=attempt + 1, simpler=attempt >= 1, matched=what)


def choose_language(digits: str, speech: str, attempt: int) -> str | None:
    """The language the first question's answer picks: 1 or "English", 2 or "español"; English after one repeat."""
    heard = speech.lower()
    if digits == "1" or "english" in heard or "inglés" in heard:
        return "en"
    if digits == "2" or "español" in heard or "spanish" in heard or "espanol" in heard:
        return "es"
    if attempt >= 1:
        return "en"  # safe default after one repeat: carry on rather than hang up
    return None
