"""Splitting text into word tokens and sentence spans, for the rule checkers.

Owns the one tokeniser the drug lexicon applies both to its own phrases and to
user text (so the two always agree), and the clause splitter the dose check
reads one clause at a time. Both are a single regex pass: the rule checkers must
stay under a millisecond per text.

May import: the standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words keep inner hyphens/apostrophes/dots so that "co-trimoxazole" and
# "st. john's wort" tokenise the same way in the lexicon and in user text.
TOKEN_RE = re.compile(r"[a-z0-9]+(?:['’.\-][a-z0-9]+)*")


@dataclass(frozen=True)
class Token:
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    return [Token(m.group(), m.start(), m.end()) for m in TOKEN_RE.finditer(text.lower())]


def sentences(text: str) -> list[tuple[int, int]]:
    """Character spans of sentences/clauses, split on . ! ? ; and newlines."""
    spans, start = [], 0
    for m in re.finditer(r"[.!?;\n]+(?:\s+|$)|$", text):
        if m.end() > start and text[start:m.start()].strip():
            spans.append((start, m.start()))
        start = m.end()
        if m.end() == len(text):
            break
    return spans
