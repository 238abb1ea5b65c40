"""Drug-drug interactions: a curated table, a DDInter loader, and a text checker.

The curated table (`medqa/resources/safety/interactions.csv`, written for this
project) states rules between drugs or drug classes; loading expands classes to
their member drugs, so a few hundred lines of rules become several hundred
concrete pairs. Lookups are one dict access on a sorted name pair, which stays
constant-time with DDInter's ~200k pairs loaded on top.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from itertools import combinations
from pathlib import Path
from typing import Iterable

from medqa.safety.context import as_context
from medqa.safety.lexicon import CLASS_PREFIX, DrugLexicon, class_members, display_name

SEVERITIES = ("minor", "moderate", "major")
RANK = {s: i for i, s in enumerate(SEVERITIES)}
# DDInter grades some pairs "Unknown": the interaction is documented but not graded.
# We flag those as moderate rather than hide them.
DDINTER_LEVELS = {"major": "major", "moderate": "moderate", "minor": "minor", "unknown": "moderate"}


@dataclass(frozen=True)
class Interaction:
    drug_a: str
    drug_b: str
    severity: str
    description: str
    source: str

    def as_dict(self) -> dict:
        out = asdict(self)
        out["drug_a"], out["drug_b"] = display_name(self.drug_a), display_name(self.drug_b)
        return out


def pair_key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


class InteractionTable:
    """Pair -> Interaction, keeping the most severe entry when rules overlap."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, str], Interaction] = {}

    def __len__(self) -> int:
        return len(self._pairs)

    def add(self, a: str, b: str, severity: str, description: str, source: str) -> None:
        if a == b:
            return
        if severity not in RANK:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {severity!r}")
        key = pair_key(a, b)
        old = self._pairs.get(key)
        if old is None or RANK[severity] > RANK[old.severity]:
            self._pairs[key] = Interaction(key[0], key[1], severity, description, source)

    def lookup(self, a: str, b: str) -> Interaction | None:
        return self._pairs.get(pair_key(a, b))

    def names(self) -> set[str]:
        return {n for key in self._pairs for n in key}

    def drug_pairs(self) -> list[Interaction]:
        """Concrete drug-drug pairs (class pseudo-drugs excluded)."""
        return [i for (a, b), i in self._pairs.items()
                if not a.startswith(CLASS_PREFIX) and not b.startswith(CLASS_PREFIX)]

    def among(self, drugs: Iterable[str]) -> list[Interaction]:
        """Every interacting pair among `drugs`, most severe first."""
        unique = list(dict.fromkeys(drugs))
        found = [hit for a, b in combinations(unique, 2) if (hit := self.lookup(a, b))]
        return sorted(found, key=lambda i: -RANK[i.severity])

    def update(self, other: "InteractionTable") -> None:
        for i in other._pairs.values():
            self.add(i.drug_a, i.drug_b, i.severity, i.description, i.source)


def _expand(name: str, members: dict[str, list[str]]) -> list[str]:
    return members.get(name, [name])


def load_curated(path: str | Path | None = None) -> InteractionTable:
    """Read the rule CSV (a, b, severity, description, source) and expand classes."""
    members = class_members()
    table = InteractionTable()
    with _open_rules(path) as fh:
        rules = list(csv.DictReader(fh))
    for r in rules:
        for a in _expand(r["a"], members):
            for b in _expand(r["b"], members):
                table.add(a, b, r["severity"], r["description"], r["source"])
    _add_class_pairs(table, members)
    return table


def _open_rules(path: str | Path | None):
    if path is not None:
        return open(path, newline="", encoding="utf-8")
    return resources.files("medqa.resources").joinpath("safety/interactions.csv").open(
        "r", newline="", encoding="utf-8")


def _add_class_pairs(table: InteractionTable, members: dict[str, list[str]]) -> None:
    """Let class words in text ("NSAIDs", "blood thinners") match: a class
    interacts with X at the severity of its most severe member interaction."""
    drug_pairs = table.drug_pairs()
    for cls, drugs in members.items():
        inside = set(drugs)
        for i in drug_pairs:
            for mine, other in ((i.drug_a, i.drug_b), (i.drug_b, i.drug_a)):
                if mine in inside and other not in inside:
                    note = f"Applies to {mine} among {display_name(cls)}: {i.description}"
                    table.add(cls, other, i.severity, note, i.source)
    for cls, drugs in members.items():
        for other_cls, other_drugs in members.items():
            hits = [h for a in drugs for b in other_drugs if a != b and (h := table.lookup(a, b))]
            if hits and cls != other_cls:
                worst = max(hits, key=lambda h: RANK[h.severity])
                note = f"E.g. {worst.drug_a} with {worst.drug_b}: {worst.description}"
                table.add(cls, other_cls, worst.severity, note, worst.source)


def load_ddinter(path: str | Path, canonical=None) -> InteractionTable:
    """Load DDInter's CSV export (DDInterID_A, Drug_A, DDInterID_B, Drug_B, Level).

    Names are mapped through `canonical` (default: the curated lexicon, so that
    DDInter's "Acetylsalicylic acid" and our "aspirin" meet)."""
    canonical = canonical or _canonical_cached()
    table = InteractionTable()
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            level = DDINTER_LEVELS.get(row["Level"].strip().lower())
            if level is None:
                continue
            a, b = canonical(row["Drug_A"]), canonical(row["Drug_B"])
            table.add(a, b, level, f"DDInter {row['Level'].strip()} interaction "
                      f"({row['DDInterID_A']}-{row['DDInterID_B']}).", "DDInter")
    return table


def _canonical_cached():
    lex = DrugLexicon()
    cache: dict[str, str] = {}

    def canonical(name: str) -> str:
        if name not in cache:
            cache[name] = lex.canonical(name)
        return cache[name]

    return canonical


@lru_cache(maxsize=1)
def default_table() -> InteractionTable:
    return load_curated()


class InteractionChecker:
    """A table plus a lexicon that knows every drug name in it (so DDInter names
    are found in text too). Build once; checks are then dict lookups."""

    def __init__(self, table: InteractionTable | None = None):
        self.table = table or default_table()
        self.lexicon = DrugLexicon(self.table.names())

    def drugs(self, text: str) -> list[str]:
        """Canonical names in `text`; an unknown name is kept as written (lower case)."""
        return [m.name for m in self.lexicon.find(text)] or [text.strip().lower()]

    def check(self, text: str, patient_context=None) -> list[dict]:
        """Interacting pairs among the drugs named in `text` plus the patient's
        current medications (`patient_context["medications"]`). Two drugs named as
        alternatives ("Is Aleve stronger than Advil?") are not taken together."""
        mentions = self.lexicon.find(text)
        spans = {}
        for m in mentions:
            spans.setdefault(m.name, (m.start, m.end))
        hits = self.table.among([m.name for m in mentions] + self.context_drugs(patient_context))
        return [i.as_dict() for i in hits if not _alternatives(text, spans, i)]

    def context_drugs(self, patient_context) -> list[str]:
        """The patient's current medications (a `PatientContext` or its dict), canonical."""
        ctx = as_context(patient_context)
        return [name for med in (ctx.medications if ctx else []) for name in self.drugs(med)]

    def between(self, drugs: list[str]) -> list[dict]:
        """The CLI's `interactions DRUG DRUG ...`: each argument normalised (brand, case, typo)."""
        names = [name for drug in drugs for name in self.drugs(drug)]
        return [i.as_dict() for i in self.table.among(names)]


ALTERNATIVE_RE = re.compile(r"\b(?:than|vs\.?|versus|or|instead of|rather than|compared (?:to|with))\b", re.I)
TOGETHER_RE = re.compile(r"\b(?:with|and|plus|together|while|on|after|before)\b", re.I)
COMPARISON_RE = re.compile(r"\b(?:difference between|compare|comparison of)\b", re.I)


def _alternatives(text: str, spans: dict, hit: Interaction) -> bool:
    """Named as alternatives: a short 'than/or/vs' gap with no 'with/and' in it,
    or a 'difference between' question."""
    if hit.drug_a not in spans or hit.drug_b not in spans:
        return False  # one of them is a current medication: they are taken together
    (a0, a1), (b0, _) = sorted([spans[hit.drug_a], spans[hit.drug_b]])
    gap = text[a1:b0]
    if len(gap) <= 30 and ALTERNATIVE_RE.search(gap) and not TOGETHER_RE.search(gap):
        return True
    return bool(COMPARISON_RE.search(text, 0, a0)) and len(gap) <= 10


@lru_cache(maxsize=1)
def default_checker() -> InteractionChecker:
    return InteractionChecker()
