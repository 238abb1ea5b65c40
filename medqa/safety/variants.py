"""Typographic twins: the same text as phones, word processors and evasive
writers type it. The tests and `benchmarks/safety.py` check that every twin
gets the same safety decision as its original.
"""

from __future__ import annotations

import random

CURLY = str.maketrans({"'": "’", '"': "”", "-": "–"})
HOMOGLYPHS = str.maketrans({"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і", "y": "у"})


def curly(text: str) -> str:
    return text.translate(CURLY)


def no_break_spaces(text: str) -> str:
    return text.replace(" ", "\u00a0")


def zero_width(text: str, rng: random.Random | None = None) -> str:
    """A zero-width space (or joiner, soft hyphen, bidi mark) inside most words."""
    rng = rng or random.Random(0)
    marks = ["\u200b", "\u200c", "\u200d", "\u00ad", "\u2060", "\u200e"]
    out = []
    for word in text.split(" "):
        if len(word) > 2:
            i = rng.randrange(1, len(word))
            word = word[:i] + rng.choice(marks) + word[i:]
        out.append(word)
    return " ".join(out)


def upper(text: str) -> str:
    return text.upper()


def full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else ("\u3000" if c == " " else c) for c in text)


def homoglyphs(text: str) -> str:
    """Latin letters swapped for their Cyrillic look-alikes."""
    return text.translate(HOMOGLYPHS)


TWINS = {"curly_quotes": curly, "no_break_spaces": no_break_spaces, "zero_width": zero_width,
         "upper_case": upper, "full_width": full_width, "homoglyphs": homoglyphs}


def twins(text: str) -> dict[str, str]:
    """Every twin of `text`, by the name of its transformation."""
    return {name: fn(text) for name, fn in TWINS.items()}
