"""Risk triage of a transcript: phrases as data (English and Spanish), whole-word matching.

The phrases live in ``data/risk_phrases.yaml``. Matching ignores case and accents (speech
engines and callers differ on both), treats hyphens as spaces, and lets ``word*`` match a
word's simple variants. Every match keeps its character span for highlighting.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

# "none": no risk phrase matched. "low" is for categories worth a glance but not a priority.
LEVEL_ORDER = ("none", "low", "medium", "high")
WEIGHTS = {"none": 0, "low": 1, "medium": 2, "high": 3}


@dataclass(frozen=True)
class RiskPhrase:
    """One phrase of a category, compiled to a whole-word pattern."""

    category: str
    level: str
    language: str
    phrase: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class RiskMatch:
    """Where a risk phrase was found in a transcript."""

    category: str
    level: str
    language: str
    phrase: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Triage:
    """The outcome of triage: level, score and the matches to highlight."""

    level: str
    score: int
    matches: list[RiskMatch]

    @property
    def categories(self) -> list[str]:
        """Distinct matched categories, in order of first appearance."""
        return list(dict.fromkeys(m.category for m in self.matches))

    @property
    def terms(self) -> list[str]:
        """Distinct matched words as they appear in the transcript (what a reader highlights)."""
        return list(dict.fromkeys(m.text for m in self.matches))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {"level": self.level, "score": self.score, "categories": self.categories,
                "matches": [asdict(m) for m in self.matches]}


def fold(text: str) -> str:
    """Lower-case, strip accents and turn hyphens into spaces, keeping every character's offset."""
    out = []
    for ch in text:
        base = unicodedata.normalize("NFD", ch)[0]  # 'á' -> 'a', one char for one char
        lower = base.lower()[:1] or base  # a single character, so offsets stay aligned
        out.append(" " if base in "-_" else lower)
    return "".join(out)


def compile_phrase(phrase: str) -> re.Pattern[str]:
    """A whole-word, whitespace-tolerant regex for a phrase (``*`` ends a word stem)."""
    parts = []
    for token in fold(phrase).split():
        stem, star = (token[:-1], True) if token.endswith("*") else (token, False)
        parts.append(re.escape(stem) + (r"\w*" if star else ""))
    return re.compile(r"(?<!\w)" + r"\s+".join(parts) + r"(?!\w)")


@lru_cache(maxsize=4)
def load_phrases(source: str | None = None) -> tuple[RiskPhrase, ...]:
    """Load and compile the risk phrases (the packaged file unless ``source`` is YAML text)."""
    if source is None:
        source = (resources.files("transcription") / "data" / "risk_phrases.yaml").read_text("utf-8")
    data = yaml.safe_load(source)
    phrases = []
    for category, spec in data["categories"].items():
        level = spec["level"]
        if level not in LEVEL_ORDER:
            raise ValueError(f"risk category {category}: unknown level {level!r}")
        for language in ("en", "es"):
            for phrase in spec.get(language, []):
                phrases.append(RiskPhrase(category, level, language, str(phrase), compile_phrase(str(phrase))))
    return tuple(phrases)


def triage(text: str, phrases: tuple[RiskPhrase, ...] | None = None) -> Triage:
    """Match risk phrases of both languages on a transcript and grade it none, low, medium or high."""
    folded = fold(text)
    matches: list[RiskMatch] = []
    taken: list[tuple[int, int]] = []
    # Longer phrases first, so "me quiero morir" wins over the "quiero morir" inside it.
    for rp in sorted(phrases or load_phrases(), key=lambda p: -len(p.phrase)):
        for m in rp.pattern.finditer(folded):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            taken.append((m.start(), m.end()))
            matches.append(RiskMatch(rp.category, rp.level, rp.language, rp.phrase, text[m.start():m.end()],
                                     m.start(), m.end()))
    matches.sort(key=lambda m: m.start)
    # The score adds each matched category once, so repeating a phrase does not outrank
    # a message that names several different dangers.
    score = sum(WEIGHTS[level] for level in dict((m.category, m.level) for m in matches).values())
    level = max((m.level for m in matches), key=LEVEL_ORDER.index, default="none")
    return Triage(level=level, score=score, matches=matches)
