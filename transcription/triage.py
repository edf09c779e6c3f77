"""Risk triage of a transcript: phrases as data (English and Spanish), whole-word matching.

The phrases live in ``data/risk_phrases.yaml``. Matching ignores case and accents (speech
engines and callers differ on both), treats hyphens as spaces, and lets ``word*`` match a
word's simple variants. Every match keeps its character span for highlighting.

Simple negation and hedging, also data per language in the same file ("not", "never", "i
don't think", "no quiero"...), lower a match to ``mentioned``: it stays on the page, it just
does not make the message high risk. With the recognizer's words, every match also carries
where in the audio it is and how sure the recognizer was; an unsure risk word still counts as
risk, and an unsure negation word lowers nothing.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

# "none": no risk phrase matched. "mentioned": only negated matches ("i'm not suicidal").
# "low" is for categories worth a glance but not a priority.
LEVEL_ORDER = ("none", "mentioned", "low", "medium", "high")
WEIGHTS = {"none": 0, "mentioned": 0, "low": 1, "medium": 2, "high": 3}
CATEGORY_LEVELS = ("low", "medium", "high")
# Below this recognizer confidence a word is "unsure" (the dashboard marks it the same way).
UNSURE_BELOW = 0.6
# How many filler words may stand between a negation and the phrase ("not GOING TO kill myself").
NEGATION_REACH = 4


@dataclass(frozen=True)
class RiskPhrase:
    """One phrase of a category, compiled to a whole-word pattern."""

    category: str
    level: str
    language: str
    phrase: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class Negation:
    """A language's negation and hedging words, and the words that may stand between them and a phrase."""

    cues: tuple[tuple[str, ...], ...]
    between: frozenset[str]


@dataclass(frozen=True)
class RiskMatch:
    """Where a risk phrase was found in a transcript, and how far to trust it."""

    category: str
    level: str  # the category's level, or "mentioned" when negated
    language: str
    phrase: str
    text: str
    start: int
    end: int
    category_level: str = ""
    negated_by: str = ""  # the negation or hedge that lowered it ("not", "no quiero")
    confidence: float | None = None  # the lowest recognizer confidence of its words
    start_s: float | None = None  # where it is in the audio (seconds)
    end_s: float | None = None

    @property
    def unsure(self) -> bool:
        """True when the recognizer was unsure of one of its words (it still counts as risk)."""
        return self.confidence is not None and self.confidence < UNSURE_BELOW


@dataclass(frozen=True)
class Triage:
    """The outcome of triage: level, score and the matches to highlight."""

    level: str
    score: int
    matches: list[RiskMatch]

    @property
    def level_ignoring_negation(self) -> str:
        """The level as if no negation had been heard (for a live caller, where safety comes first)."""
        return max((m.category_level or m.level for m in self.matches), key=LEVEL_ORDER.index, default="none")

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
                "matches": [{**asdict(m), "unsure": m.unsure} for m in self.matches]}

    def flags(self) -> list[dict[str, Any]]:
        """What the voicemail page shows of each match: phrase, words, level, confidence, time."""
        return [{"phrase": m.phrase, "text": m.text, "category": m.category, "level": m.level, "language": m.language,
                 "category_level": m.category_level, "negated_by": m.negated_by, "conf": m.confidence,
                 "start": m.start_s, "end": m.end_s} for m in self.matches]


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


def _load_data(source: str | None) -> dict[str, Any]:
    if source is None:
        source = (resources.files("transcription") / "data" / "risk_phrases.yaml").read_text("utf-8")
    data = yaml.safe_load(source)
    if not isinstance(data, dict):
        raise ValueError("risk phrases: the file must be a mapping with 'categories'")
    return data


@lru_cache(maxsize=4)
def load_phrases(source: str | None = None) -> tuple[RiskPhrase, ...]:
    """Load and compile the risk phrases (the packaged file unless ``source`` is YAML text)."""
    data = _load_data(source)
    phrases = []
    for category, spec in data["categories"].items():
        level = spec["level"]
        if level not in CATEGORY_LEVELS:
            raise ValueError(f"risk category {category}: unknown level {level!r}")
        for language in ("en", "es"):
            for phrase in spec.get(language, []):
                phrases.append(RiskPhrase(category, level, language, str(phrase), compile_phrase(str(phrase))))
    return tuple(phrases)


@lru_cache(maxsize=4)
def load_negations(source: str | None = None) -> dict[str, Negation]:
    """The negation and hedging words of each language (the packaged file unless ``source`` is YAML text)."""
    data = _load_data(source).get("negation") or {}
    return {language: Negation(tuple(tuple(_words(str(cue))) for cue in spec.get("cues", [])),
                               frozenset(_words(" ".join(str(w) for w in spec.get("between", [])))))
            for language, spec in data.items()}


def _words(text: str) -> list[str]:
    """Folded words without edge punctuation (what negation compares)."""
    return [w for w in (_EDGE.sub("", token) for token in fold(text).split()) if w]


_EDGE = re.compile(r"^[^\w']+|[^\w']+$")


@dataclass(frozen=True)
class _Token:
    word: str
    start: int
    end: int


def _tokens(folded: str) -> list[_Token]:
    return [_Token(_EDGE.sub("", m.group()), m.start(), m.end()) for m in re.finditer(r"\S+", folded)]


def _negation(tokens: list[_Token], first: int, rule: Negation | None, confidences: list[float] | None) -> str:
    """The negation or hedge just before token ``first`` (skipping a few filler words), or ''."""
    if rule is None:
        return ""
    end = first  # the cue must end right before token ``end``
    for _ in range(NEGATION_REACH + 1):
        for cue in rule.cues:
            begin = end - len(cue)
            if begin >= 0 and tuple(t.word for t in tokens[begin:end]) == cue:
                # A negation the recognizer was unsure of lowers nothing: the risk stands.
                if confidences is not None and min(confidences[begin:end], default=1.0) < UNSURE_BELOW:
                    return ""
                return " ".join(cue)
        if end == 0 or tokens[end - 1].word not in rule.between:
            return ""
        end -= 1
    return ""


def triage(text: str, phrases: tuple[RiskPhrase, ...] | None = None, words: list[Any] | None = None,
           negations: dict[str, Negation] | None = None) -> Triage:
    """Match risk phrases of both languages on a transcript and grade it none, mentioned, low, medium or high.

    ``words`` (the recognizer's, each with ``start``, ``end`` and ``confidence``, in the order of
    the text's words) add where each match is in the audio and how sure the recognizer was.
    """
    folded = fold(text)
    tokens = _tokens(folded)
    # The recognizer's words line up with the text's words only when they are the same count.
    timed = words if words is not None and len(words) == len(tokens) else None
    confidences = [float(w.confidence) for w in timed] if timed is not None else None
    rules = load_negations() if negations is None else negations
    matches: list[RiskMatch] = []
    taken: list[tuple[int, int]] = []
    # Longer phrases first, so "me quiero morir" wins over the "quiero morir" inside it.
    for rp in sorted(phrases or load_phrases(), key=lambda p: -len(p.phrase)):
        for m in rp.pattern.finditer(folded):
            if any(m.start() < end and start < m.end() for start, end in taken):
                continue
            taken.append((m.start(), m.end()))
            inside = [i for i, t in enumerate(tokens) if t.start < m.end() and m.start() < t.end]
            first = inside[0] if inside else 0
            negated_by = _negation(tokens, first, rules.get(rp.language), confidences)
            confidence = start_s = end_s = None
            if timed is not None and inside:
                confidence = round(min(float(timed[i].confidence) for i in inside), 4)
                start_s, end_s = float(timed[inside[0]].start), float(timed[inside[-1]].end)
            matches.append(RiskMatch(rp.category, "mentioned" if negated_by else rp.level, rp.language, rp.phrase,
                                     text[m.start():m.end()], m.start(), m.end(), rp.level, negated_by,
                                     confidence, start_s, end_s))
    matches.sort(key=lambda m: m.start)
    # The score adds each matched category once, so repeating a phrase does not outrank
    # a message that names several different dangers.
    score = sum(WEIGHTS[level] for level in dict((m.category, m.level) for m in matches).values())
    level = max((m.level for m in matches), key=LEVEL_ORDER.index, default="none")
    return Triage(level=level, score=score, matches=matches)
