"""Turn a stored transcript into display tokens: risk words highlighted, unsure words marked."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

LOW_CONFIDENCE = 0.6
_EDGE_PUNCT = re.compile(r"^\W+|\W+$")


@dataclass(frozen=True)
class Token:
    """One word of a transcript as the page shows it."""

    text: str
    risk: bool = False
    unsure: bool = False
    conf: float | None = None
    start: float | None = None


def _norm(word: str) -> str:
    return _EDGE_PUNCT.sub("", word.lower())


def tokens_for(transcript: str, words: list[dict[str, Any]] | None, risk_terms: list[str],
               low_confidence: float = LOW_CONFIDENCE) -> list[Token]:
    """Tokens from the engine's word list (with confidences), else from the transcript text."""
    raw: list[tuple[str, float | None, float | None]] = []
    if words:
        for item in words:
            text = str(item.get("word") or item.get("text") or "").strip()
            if not text:
                continue
            conf = item.get("conf")
            start = item.get("start")
            raw.append((text, float(conf) if conf is not None else None,
                        float(start) if start is not None else None))
    else:
        raw = [(text, None, None) for text in transcript.split()]
    normalized = [_norm(text) for text, _, _ in raw]
    risky: set[int] = set()
    # Risk terms may be phrases ("end it all"): mark every word of each occurrence.
    for term in risk_terms:
        parts = [_norm(p) for p in str(term).split() if _norm(p)]
        if not parts:
            continue
        for i in range(len(normalized) - len(parts) + 1):
            if normalized[i:i + len(parts)] == parts:
                risky.update(range(i, i + len(parts)))
    return [
        Token(text=text, risk=i in risky, unsure=conf is not None and conf < low_confidence, conf=conf, start=start)
        for i, (text, conf, start) in enumerate(raw)
    ]
