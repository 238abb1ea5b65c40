"""Sentence windows: how the classifiers read a text of any length.

A sentence embedding of a whole 4,000-character post averages its crisis
sentence away, and the embedder reads only its first 128 tokens anyway. So the
learned checks score short windows and take the maximum: every sentence, every
pair of neighbouring sentences (a signal may span two), and the whole text
when it is short. Sentences typed without punctuation are cut into overlapping
runs of words, so a run-on message is read whole too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
MAX_WORDS = 40  # about 55 MiniLM tokens: one window, well under its 128-token limit
STRIDE = 20     # long unpunctuated runs overlap by half a window


@dataclass(frozen=True)
class Window:
    """A stretch of the (normalised) text: its words and where it starts."""

    text: str
    start: int
    end: int


def sentences(text: str) -> list[Window]:
    """Sentences with their character spans; over-long ones cut into word runs."""
    out: list[Window] = []
    start = 0
    for m in [*SENTENCE_END.finditer(text), None]:
        end = m.start() if m else len(text)
        if text[start:end].strip():
            out.extend(_word_runs(text, start, end))
        if m:
            start = m.end()
    return out


def _word_runs(text: str, start: int, end: int) -> list[Window]:
    words = [(m.start(), m.end()) for m in re.finditer(r"\S+", text[start:end])]
    if len(words) <= MAX_WORDS:
        return [Window(text[start:end].strip(), start + words[0][0], start + words[-1][1])]
    runs = []
    for i in range(0, len(words) - STRIDE, STRIDE):
        chunk = words[i:i + MAX_WORDS]
        a, b = start + chunk[0][0], start + chunk[-1][1]
        runs.append(Window(text[a:b], a, b))
    return runs


def windows(text: str) -> list[Window]:
    """Every sentence, every neighbouring pair that fits, and the whole text if short."""
    sents = sentences(text)
    out = list(sents)
    for a, b in zip(sents, sents[1:]):
        if b.start > a.start and len(text[a.start:b.end].split()) <= MAX_WORDS:
            out.append(Window(text[a.start:b.end], a.start, b.end))
    if len(sents) > 1 and len(text.split()) <= MAX_WORDS:
        out.append(Window(text, 0, len(text)))
    unique = {(w.start, w.end): w for w in out}  # two sentences: the pair is the whole text
    return list(unique.values()) or [Window(text, 0, len(text))]
