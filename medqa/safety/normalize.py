"""The one text normalisation every safety check reads through.

People type on phones and paste from everywhere: curly apostrophes, no-break
spaces, zero-width characters inside words, full-width or mathematical letters,
Cyrillic look-alikes. A check that reads raw text misses "I don’t want to live"
because of one apostrophe. `normalize_text` maps all of these to the plain
ASCII forms the rules and the classifiers were written and trained on:

1. Unicode NFKC (full-width, mathematical and ligature forms -> ASCII);
2. invisible characters removed (format characters such as zero-width spaces,
   soft hyphens and bidi marks; variation selectors; fillers);
3. accents and other combining marks dropped ("dïe" -> "die", Zalgo text);
4. look-alike letters folded to ASCII with Unicode's confusables table (from
   `confusable-homoglyphs`: Cyrillic "а", Greek "ο" -> "a", "o");
5. typographic quotes and dashes to ASCII;
6. whitespace runs collapsed (line breaks kept: they end sentences).

Case is kept (the checks lower-case for themselves), so the report can quote
the text as the person wrote it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache
from importlib import resources

PUNCTUATION = {
    **dict.fromkeys("‘’‚‛′‵´ʹʻʼʽˈ＇", "'"),
    **dict.fromkeys("“”„‟″‶«»〝〞＂", '"'),
    **dict.fromkeys("‐‑‒–—―−⁃﹘﹣－", "-"),
}
# Not format characters (Cf), but invisible all the same.
INVISIBLE = "\u034f\u115f\u1160\u3164\uffa0\u180b\u180c\u180d\u180e\u200b"
HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
LINE_BREAKS = re.compile(r"\s*\n\s*")


@lru_cache(maxsize=1)
def _confusable_table() -> dict[int, str]:
    """Non-ASCII characters that look like one ASCII letter or digit -> that character."""
    data = json.loads(resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8"))
    table: dict[int, str] = {}
    for char, homoglyphs in data.items():
        for glyph in (g["c"] for g in homoglyphs):
            for src, dst in ((glyph, char), (char, glyph)):
                if len(src) == 1 and not src.isascii() and len(dst) == 1 and dst.isascii() and dst.isalnum():
                    # A letter beats a digit ("О" is the letter O, not zero).
                    if ord(src) not in table or (dst.isalpha() and not table[ord(src)].isalpha()):
                        table[ord(src)] = dst
    return table


@lru_cache(maxsize=1)
def _translation() -> dict[int, str | None]:
    table: dict[int, str | None] = dict(_confusable_table())
    table.update({ord(k): v for k, v in PUNCTUATION.items()})
    table.update(dict.fromkeys(map(ord, INVISIBLE)))
    table.update(dict.fromkeys(range(0xFE00, 0xFE10)))  # variation selectors
    return table


def _drop_invisible_and_marks(text: str) -> str:
    decomposed = unicodedata.normalize("NFD", text)
    kept = "".join(c for c in decomposed if unicodedata.category(c) not in ("Cf", "Mn", "Me"))
    return unicodedata.normalize("NFC", kept)


def normalize_text(text: str) -> str:
    """The text as every safety check reads it (see the module docstring)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        text = _drop_invisible_and_marks(text).translate(_translation())
        text = unicodedata.normalize("NFKC", text)  # a folded letter may compose anew
    text = HORIZONTAL_SPACE.sub(" ", text)
    return LINE_BREAKS.sub("\n", text).strip()
