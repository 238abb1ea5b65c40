"""Emergency detection: symptom patterns with negation, history and framing.

Patterns and cue lists live in `medqa/resources/safety/emergency.json`. A match
raises the alarm unless
  * it is negated ("no chest pain", "denies suicidal thoughts"),
  * it is past history ("history of stroke", "a heart attack 5 years ago"), or
  * the text is an exam question, educational or hypothetical ("Which artery is
    occluded in an inferior MI?", "If you have chest pain, call 911") and has no
    first-person present-tense cue ("my son just swallowed ...").
A type's `means_patterns` (asking for the means of suicide: "the most painless
way to die") are questions by nature, so framing never suppresses them.
Suppressed matches are returned too, so the report can say why nothing fired.
Negation and history cues end at clause boundaries (commas, "but", "and now").
The validator hands this module normalised text (`normalize.py`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

ALARM = "alarm"


@dataclass(frozen=True)
class EmergencyRules:
    types: dict[str, dict]
    patterns: list[tuple[str, re.Pattern]]
    means: list[tuple[str, re.Pattern]]
    negation: re.Pattern
    pseudo_negation: re.Pattern
    terminators: re.Pattern
    history: re.Pattern
    clause_split: re.Pattern
    exam: re.Pattern
    educational: re.Pattern
    personal: re.Pattern
    window: int


@lru_cache(maxsize=1)
def rules() -> EmergencyRules:
    path = resources.files("medqa.resources").joinpath("safety/emergency.json")
    raw = json.loads(path.read_text(encoding="utf-8"))
    patterns = [(kind, re.compile(p)) for kind, t in raw["types"].items() for p in t["patterns"]]
    means = [(kind, re.compile(p)) for kind, t in raw["types"].items() for p in t.get("means_patterns", [])]
    cue = {k: re.compile(raw[k]) for k in ("negation", "pseudo_negation", "history",
                                           "clause_split", "exam", "educational", "personal")}
    return EmergencyRules(types=raw["types"], patterns=patterns, means=means,
                          terminators=re.compile(raw["negation_terminators"]),
                          window=raw["negation_window_tokens"], **cue)


def _sentence_bounds(low: str, pos: int) -> tuple[int, int]:
    start = max(low.rfind(c, 0, pos) for c in ".!?\n") + 1
    ends = [i for i in (low.find(c, pos) for c in ".!?\n") if i != -1]
    return start, min(ends, default=len(low))


def emergency_types() -> dict[str, dict]:
    """Type -> label and advice, for every emergency type (rules and the learned detector share them)."""
    return rules().types


SUBJECT = re.compile(r"\b(?:i|i'm|im|i've|i'd|he|she|we|they|it|you|my|his|her|our|their)\b")


def _negated(r: EmergencyRules, prefix: str) -> bool:
    """A negation cue among the last few words before the match, within its clause:
    "not sleeping, not eating, I want to die" is not a negated wish to die. A
    comma or "and" ends the clause only when a new subject follows it, so a
    negated list ("no fever, chest pain or shortness of breath") stays negated."""
    cuts = [m.end() for m in r.terminators.finditer(prefix)]
    cuts += [m.end() for m in r.clause_split.finditer(prefix) if SUBJECT.search(prefix, m.end())]
    if cuts:
        prefix = prefix[max(cuts):]
    prefix = r.pseudo_negation.sub(" ", prefix)
    window = " ".join(prefix.split()[-r.window:])
    return bool(r.negation.search(window))


def _clause(r: EmergencyRules, sentence: str, start: int, end: int) -> str:
    """The comma/'but'-delimited clause around a match: history cues count only there."""
    cuts = [m for m in r.clause_split.finditer(sentence)]
    left = max((m.end() for m in cuts if m.end() <= start), default=0)
    right = min((m.start() for m in cuts if m.start() >= end), default=len(sentence))
    return sentence[left:right]


def _status(r: EmergencyRules, low: str, m: re.Match, framed_text: bool, personal: bool,
            means: bool = False) -> str:
    s0, s1 = _sentence_bounds(low, m.start())
    sentence = low[s0:s1]
    start, end = m.start() - s0, m.end() - s0
    if _negated(r, sentence[:start]):
        return "negated"
    if r.history.search(_clause(r, sentence, start, end)):
        return "history"
    if not means and not personal and (framed_text or r.educational.search(sentence)):
        return "framing"
    return ALARM


def check_emergency(text: str) -> list[dict]:
    """One entry per emergency type found: type, label, matched text, advice and
    status ('alarm', or why it was suppressed: 'negated', 'history', 'framing')."""
    r = rules()
    low = text.lower()
    framed_text = bool(r.exam.search(low))
    personal = bool(r.personal.search(low))
    best: dict[str, dict] = {}
    for (kind, pattern), means in [(p, False) for p in r.patterns] + [(p, True) for p in r.means]:
        for m in pattern.finditer(low):
            status = _status(r, low, m, framed_text, personal, means)
            if kind not in best or (status == ALARM and best[kind]["status"] != ALARM):
                info = r.types[kind]
                best[kind] = {"type": kind, "label": info["label"], "matched": text[m.start():m.end()],
                              "advice": info["advice"], "status": status}
    return list(best.values())


def exam_framed(text: str) -> bool:
    """An exam or textbook question with no first-person present-tense cue: the
    learned detector's alarm is suppressed there, as the rules' is."""
    r, low = rules(), text.lower()
    return bool(r.exam.search(low)) and not r.personal.search(low)


def emergencies(text: str) -> list[dict]:
    """Only the matches that raise the alarm."""
    return [e for e in check_emergency(text) if e["status"] == ALARM]
