"""The patient context: one schema for HTTP (pydantic), the Python API and the CLI,
and the contraindication check that uses it.

`PatientContext` is a plain frozen dataclass so this module stays import-light;
pydantic accepts it as a field type directly. `__pydantic_config__` forbids
unknown keys (a 422 naming the key), pydantic runs `__post_init__` after its own
validation and turns the ValueError raised there into a ValidationError, and
`__get_pydantic_core_schema__` (a plain-dict core schema, no pydantic import) runs
the same checks on the raw input first, so "yes" or 1 is not silently read as
`pregnant: true` and "12" is not read as an age.

Contraindications live in `medqa/resources/safety/contraindications.json`:
allergy groups (with cross-reactivity), pregnancy and breastfeeding rules, and
condition rules, each trigger matched through an alias table because allergies
and conditions are free text ("Penicillins", "sulpha drugs", "CKD", "afib").
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field, fields
from functools import lru_cache
from importlib import resources
from typing import Mapping

from medqa.safety.lexicon import DrugLexicon, class_members, display_name

MAX_ITEMS = 50
MAX_CHARS = 200
SEVERITIES = ("moderate", "major")
NEGATED = re.compile(r"(?:no|not|never|denies|without)\b")  # "not pregnant", "no asthma"


@dataclass(frozen=True)
class PatientContext:
    """What the safety checks may use about the patient; every field is optional."""

    __pydantic_config__ = {"extra": "forbid", "use_attribute_docstrings": True}

    age: float | None = None
    """Age in years (0-130); fractions for infants (0.5 is six months)."""
    weight_kg: float | None = None
    """Body weight in kilograms (over 0, at most 500)."""
    pregnant: bool | None = None
    """True if pregnant, False if known not to be; None when unknown."""
    breastfeeding: bool | None = None
    """True if breastfeeding, False if known not to be; None when unknown."""
    allergies: list[str] = field(default_factory=list)
    """Drug allergies as the user writes them ("penicillin", "sulfa drugs", "NSAIDs")."""
    conditions: list[str] = field(default_factory=list)
    """Medical conditions as free text ("CKD", "asthma", "atrial_fibrillation")."""
    medications: list[str] = field(default_factory=list)
    """Current medications (generic or brand names), checked for interactions."""

    def __post_init__(self) -> None:
        _check_number("age", self.age, lambda v: 0 <= v <= 130, "between 0 and 130 years")
        _check_number("weight_kg", self.weight_kg, lambda v: 0 < v <= 500, "over 0 and at most 500 kg")
        for name in ("pregnant", "breastfeeding"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, bool):
                raise ValueError(f"patient_context.{name} must be true, false or null, got {value!r}")
        for name in ("allergies", "conditions", "medications"):
            object.__setattr__(self, name, _checked_list(name, getattr(self, name)))

    @classmethod
    def from_dict(cls, d: Mapping) -> "PatientContext":
        """Build from a JSON-style dict; unknown keys are an error (as over HTTP), and a
        null value means "not given"."""
        if not isinstance(d, Mapping):
            raise TypeError(f"patient_context must be a dict, got {type(d).__name__}")
        given = {k: v for k, v in d.items() if v is not None}
        unknown = sorted(str(k) for k in given if k not in FIELD_NAMES)
        if unknown:
            raise ValueError(f"unknown patient_context key(s): {', '.join(unknown)}; "
                             f"allowed: {', '.join(FIELD_NAMES)}")
        return cls(**given)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def __get_pydantic_core_schema__(cls, source, handler):
        # pydantic coerces "yes" -> True and "12" -> 12.0 before __post_init__ sees
        # them; checking the raw dict first keeps the HTTP schema as strict as ours.
        return {"type": "function-before", "function": {"type": "no-info", "function": _check_raw},
                "schema": handler(source)}


FIELD_NAMES = tuple(f.name for f in fields(PatientContext))


def _check_number(name: str, value, ok, words: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"patient_context.{name} must be a number, got {value!r}")
    if not math.isfinite(value) or not ok(value):
        raise ValueError(f"patient_context.{name} must be {words}, got {value!r}")


def _checked_list(name: str, value) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"patient_context.{name} must be a list of strings, got {value!r:.80}")
    if len(value) > MAX_ITEMS:
        raise ValueError(f"patient_context.{name} has {len(value)} items; at most {MAX_ITEMS} are allowed")
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"patient_context.{name} items must be strings, got {item!r:.80}")
        if len(item) > MAX_CHARS:
            raise ValueError(f"patient_context.{name} items must be at most {MAX_CHARS} characters")
    return list(value)


def _check_raw(value):
    """pydantic's before-validator: the raw known keys must pass our own checks."""
    if isinstance(value, Mapping):
        PatientContext(**{k: v for k, v in value.items() if k in FIELD_NAMES})
    return value


def as_context(value) -> PatientContext | None:
    """None, a dict (see `PatientContext.from_dict`) or a PatientContext."""
    if value is None or isinstance(value, PatientContext):
        return value
    if isinstance(value, Mapping):
        return PatientContext.from_dict(value)
    raise TypeError(f"patient_context must be a dict or PatientContext, got {type(value).__name__}")


# ---- contraindications ------------------------------------------------------

@dataclass(frozen=True)
class Rule:
    drugs: frozenset[str]
    severity: str
    reason: str


@dataclass(frozen=True)
class Trigger:
    """An allergy group or a condition: the aliases that name it and its rules.
    `members`: drugs an allergy to which counts as an allergy to the whole group."""

    key: str
    pattern: re.Pattern
    rules: tuple[Rule, ...]
    members: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Contraindications:
    allergies: tuple[Trigger, ...]
    conditions: tuple[Trigger, ...]
    pregnancy: tuple[Rule, ...]
    breastfeeding: tuple[Rule, ...]
    flags: dict[str, re.Pattern]  # condition strings that mean pregnant / breastfeeding


def normalise(s: str) -> str:
    """Lower case, underscores/hyphens as spaces, single spaces: "Chronic_Kidney-Disease"."""
    return " ".join(re.sub(r"[_\-–]+", " ", s.lower().replace("’", "'")).split())


@lru_cache(maxsize=1)
def contraindications() -> Contraindications:
    path = resources.files("medqa.resources").joinpath("safety/contraindications.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    members = class_members()
    return Contraindications(
        allergies=tuple(_trigger(k, v, members) for k, v in data["allergies"].items()),
        conditions=tuple(_trigger(k, v, members) for k, v in data["conditions"].items()),
        pregnancy=tuple(_rule(r, members) for r in data["pregnancy"]),
        breastfeeding=tuple(_rule(r, members) for r in data["breastfeeding"]),
        flags={k: _alias_pattern(v) for k, v in data["flags"].items()})


def _expand(names, members: dict[str, list[str]]) -> frozenset[str]:
    return frozenset(d for n in names for d in members.get(n, [n]))


def _rule(r: dict, members) -> Rule:
    if r["severity"] not in SEVERITIES:
        raise ValueError(f"contraindications.json: severity must be one of {SEVERITIES}: {r}")
    return Rule(_expand(r["drugs"], members), r["severity"], r["reason"])


def _trigger(key: str, v: dict, members) -> Trigger:
    return Trigger(key, _alias_pattern(v["aliases"]), tuple(_rule(r, members) for r in v["rules"]),
                   _expand(v.get("members", []), members))


def _alias_pattern(aliases: list[str]) -> re.Pattern:
    """Whole-word match of any alias inside a normalised string ("history of stomach ulcer")."""
    words = sorted({normalise(a) for a in aliases}, key=len, reverse=True)
    return re.compile(r"(?<![a-z0-9])(?:" + "|".join(map(re.escape, words)) + r")(?![a-z0-9])")


def check_context(text: str, lexicon: DrugLexicon, ctx: PatientContext | dict | None) -> list[dict]:
    """Contraindications between the drugs named in `text` and the patient's allergies,
    pregnancy, breastfeeding and conditions; most severe first."""
    ctx = as_context(ctx)
    named = named_drugs(text, lexicon)
    if ctx is None or not named:
        return []
    found = []
    for kind, trigger, rules in _triggers(ctx, lexicon):
        for rule in rules:
            found += [_finding(kind, label, trigger, rule) for label, drugs in named.items() if drugs & rule.drugs]
    return _most_severe(found)


def named_drugs(text: str, lexicon: DrugLexicon) -> dict[str, frozenset[str]]:
    """Label -> the drugs it stands for, in reading order: a drug stands for itself,
    a class word ("NSAIDs") for all its members."""
    members = class_members()
    named: dict[str, frozenset[str]] = {}
    for m in lexicon.find(text):
        named.setdefault(display_name(m.name), frozenset(members.get(m.name, [m.name])))
    return named


def _triggers(ctx: PatientContext, lexicon: DrugLexicon):
    """(kind, the user's string, rules) for everything in the context that can contraindicate."""
    data = contraindications()
    for allergy in ctx.allergies:
        yield from (("allergy", allergy, rules) for rules in _allergy_rules(allergy, lexicon, data))
    conditions = [(c, low) for c in ctx.conditions if not NEGATED.match(low := normalise(c))]
    for condition, low in conditions:
        yield from (("condition", condition, t.rules) for t in data.conditions if t.pattern.search(low))
    yield from _flag_triggers(ctx, conditions, data)


def _flag_triggers(ctx: PatientContext, conditions: list[tuple[str, str]], data: Contraindications):
    """Pregnancy and breastfeeding from the flag, or, when the flag is unset, from a
    condition saying so ("pregnant, 28 weeks"); an explicit False wins."""
    for kind, flag, word in (("pregnancy", ctx.pregnant, "pregnant"),
                             ("breastfeeding", ctx.breastfeeding, "breastfeeding")):
        said = next((c for c, low in conditions if data.flags[kind].search(low)), None)
        if flag or (flag is None and said):
            yield kind, word if flag else said, getattr(data, kind)


def _allergy_rules(allergy: str, lexicon: DrugLexicon, data: Contraindications) -> list[tuple[Rule, ...]]:
    """The rules an allergy string brings: its groups' (named directly, or through a
    drug in the group) plus a direct allergy to every drug it names."""
    low = normalise(allergy)
    drugs = frozenset().union(*named_drugs(allergy, lexicon).values())
    groups = [t for t in data.allergies if t.pattern.search(low) or drugs & t.members]
    out = [t.rules for t in groups]
    if drugs:
        out.append((Rule(drugs, "major", f"The patient reports an allergy: {allergy.strip()}."),))
    return out


def _finding(kind: str, label: str, trigger: str, rule: Rule) -> dict:
    return {"kind": kind, "drug": label, "trigger": trigger, "severity": rule.severity, "reason": rule.reason}


def _most_severe(found: list[dict]) -> list[dict]:
    """One finding per (kind, drug, trigger), the most severe; major findings first."""
    best: dict[tuple, dict] = {}
    for f in found:
        key = (f["kind"], f["drug"], f["trigger"])
        if key not in best or SEVERITIES.index(f["severity"]) > SEVERITIES.index(best[key]["severity"]):
            best[key] = f
    return sorted(best.values(), key=lambda f: -SEVERITIES.index(f["severity"]))
