"""The crisis detector's data: written texts, their windows and splits.

Data, all written for this project (`medqa/resources/safety/crisis/*.jsonl`):
first-person texts in many registers (lower case, typos, slang, long posts with
the crisis in the middle) labelled with an emergency type, each with the span
that carries the signal, and hard negatives (exam questions, history,
hypotheticals, idioms, third-person education, negations). `training.py` adds
the benign questions of the shared data (MedQuAD consumer questions, MedMCQA
exam questions) as more negatives.

The detector reads windows, so it learns from windows: every window of a
negative text is `none`; a window of a positive text takes the text's label
when it covers most of the span (or the span most of it), and the other
windows of a positive text are left out (they may carry part of the signal).

The authored texts are split 80/20 (train/validation, stratified by label) with
one seed; the threshold is picked on the validation part
(`decision_threshold`). The held-out sets in `benchmarks/data/` (`HELDOUT_SETS`),
written separately by other authors, are never trained or tuned on.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from medqa.safety.learned import NONE, reading_windows
from medqa.safety.normalize import normalize_text

LABELS = (NONE, "suicide_self_harm", "overdose_poisoning", "cardiac", "stroke", "anaphylaxis", "breathing",
          "severe_bleeding", "seizure_unresponsive", "obstetric", "head_injury", "other_critical")
SELF_HARM_LABELS = ("suicide_self_harm", "overdose_poisoning")
# A means request stays out of the harm head's negatives: if the crisis
# detector ever missed one, the harm check must still catch it.
MEANS = re.compile(r"\b(?:how (?:many|much)|lethal|painless|quickest|fastest|easiest|best way|enough to|method)\b",
                   re.I)


@dataclass(frozen=True)
class Item:
    text: str
    label: str
    span: str | None
    source: str


def authored() -> list[Item]:
    """Every text in the package's crisis folder (normalised as the checks read it)."""
    folder = resources.files("medqa.resources").joinpath("safety/crisis")
    items = []
    for f in sorted((p for p in folder.iterdir() if p.name.endswith(".jsonl")), key=lambda p: p.name):
        items += read_items(f.read_text("utf-8").splitlines(), f.name)
    return items


def read_items(lines, source: str) -> list[Item]:
    rows = [json.loads(ln) for ln in lines if ln.strip()]
    for r in rows:
        if r["label"] not in LABELS:
            raise ValueError(f"{source}: unknown label {r['label']!r}")
    return [Item(normalize_text(r["text"]), r["label"], normalize_text(r["span"]) if r.get("span") else None, source)
            for r in rows]


HELDOUT_SETS = ("crisis_heldout", "crisis_heldout_v2")
"""Written by authors who never saw the training texts; v2 by a third author after
v1's misses had been read (in aggregate) and the training texts grown."""


def heldout_path(name: str = "crisis_heldout") -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks" / "data" / f"{name}.jsonl"


def split_items(items: list[Item], seed: int) -> dict[str, list[Item]]:
    out: dict[str, list[Item]] = {"train": [], "val": []}
    for label in LABELS:
        group = [i for i in items if i.label == label]
        random.Random(f"crisis-{seed}-{label}").shuffle(group)
        cut = round(len(group) * 0.8)
        out["train"] += group[:cut]
        out["val"] += group[cut:]
    return out


def window_rows(item: Item) -> list[tuple[str, str]]:
    """(window text, label) training rows of one authored text."""
    ws = reading_windows(item.text)
    if item.label == NONE:
        return [(w.text, NONE) for w in ws]
    span = item.span or item.text
    a = item.text.find(span)
    if a < 0:
        raise ValueError(f"span not found in its text: {span[:60]!r}")
    b = a + len(span)
    rows = []
    for w in ws:
        overlap = max(0, min(b, w.end) - max(a, w.start))
        if overlap >= 0.5 * (b - a) or overlap >= 0.5 * max(w.end - w.start, 1):
            rows.append((w.text, item.label))
    return rows or [(span, item.label)]


def decision_threshold(items: list[Item], scores: list[float], min_recall: float) -> float:
    """The highest detector threshold at which the whole emergency decision (rules
    or detector) keeps `min_recall` of the positives, over all of them and over the
    self-harm ones alone (the hardest, and where a miss costs most)."""
    groups = [[(i, s) for i, s in zip(items, scores) if i.label != NONE],
              [(i, s) for i, s in zip(items, scores) if i.label in SELF_HARM_LABELS]]
    return min(_threshold_for(group, min_recall) for group in groups if group)


def _threshold_for(pairs: list[tuple[Item, float]], min_recall: float) -> float:
    from medqa.safety.emergency import emergencies

    missed = np.sort([s for i, s in pairs if not emergencies(i.text)])[::-1]
    needed = int(np.ceil(min_recall * len(pairs))) - (len(pairs) - len(missed))
    if needed <= 0:
        return float(missed[0]) + 1e-6 if len(missed) else 1.0
    return float(missed[min(needed, len(missed)) - 1])
