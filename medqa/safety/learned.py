"""Learned checks: linear heads over sentence-window embeddings.

Two checks read every request: the crisis detector (suicide and self-harm,
overdose and poisoning, the acute medical emergencies) and the harmful-request
classifier. Both are linear heads over one embedding of the safety encoder
(MiniLM with a LoRA adapter fine-tuned for both tasks, `training.py`), shipped
as plain arrays (`medqa/resources/safety/{crisis,harm}.npz`).

A text is read in sentence windows (`windows.py`) and each check takes its
maximum over them, so a crisis in the middle of a long post or a harmful
request after a long harmless preamble is seen. MiniLM costs about 0.3 ms a
token on one CPU thread, so a long post is read in two stages: the static
model distilled from MiniLM scores every window (microseconds) with a screen
head of each check, and MiniLM reads the windows the screens rank highest, up
to a word budget. Short texts skip the screen: MiniLM reads them whole.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from medqa.safety.embedding import SafetyModelMissing, shared_embedder, shared_static_embedder
from medqa.safety.windows import Window, windows

NONE = "none"
SHORT_WORDS = 30         # a text this short is one window
FULL_READ_WORDS = 120    # MiniLM reads every window of a text up to this many words (all windows together)
SCREENED_WORDS = 60      # past that, MiniLM reads the best-screened windows up to this many words


@dataclass
class LinearHead:
    """A fitted logistic regression as arrays: (k, d) weights, k biases, class names.
    k == 1 is binary (sigmoid, classes [negative, positive]); else softmax."""

    coef: np.ndarray
    intercept: np.ndarray
    classes: list[str]

    @classmethod
    def from_sklearn(cls, model) -> "LinearHead":
        return cls(model.coef_.astype(np.float32), model.intercept_.astype(np.float32),
                   [str(c) for c in model.classes_])

    def proba(self, emb: np.ndarray) -> np.ndarray:
        logits = emb @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            p = 1.0 / (1.0 + np.exp(-np.clip(logits[:, 0], -50, 50)))
            return np.stack([1 - p, p], axis=1)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def positive(self, emb: np.ndarray) -> np.ndarray:
        """Probability of anything but the first class (`none` / benign)."""
        return 1.0 - self.proba(emb)[:, 0]


@dataclass
class HeadSet:
    """The heads of one check (MiniLM heads by name, the static `screen` head),
    its decision threshold and its training card."""

    heads: dict[str, LinearHead]
    threshold: float
    card: dict = field(default_factory=dict)

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {"threshold": np.float32(self.threshold)}
        for name, h in self.heads.items():
            arrays.update({f"{name}.coef": h.coef, f"{name}.intercept": h.intercept,
                           f"{name}.classes": np.array(h.classes)})
        np.savez_compressed(path, **arrays)
        path.with_suffix(".json").write_text(json.dumps(self.card, indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> "HeadSet":
        path = Path(path)
        if not path.exists():
            raise SafetyModelMissing(f"trained safety head not found at {path}; train it with "
                                     "`medqa safety train-classifier`")
        with np.load(path) as z:
            names = sorted({k.split(".")[0] for k in z.files if "." in k})
            heads = {n: LinearHead(z[f"{n}.coef"], z[f"{n}.intercept"], [str(c) for c in z[f"{n}.classes"]])
                     for n in names}
            threshold = float(z["threshold"])
        card = json.loads(path.with_suffix(".json").read_text("utf-8")) if path.with_suffix(".json").exists() else {}
        return cls(heads, threshold, card)


def packaged_head(name: str) -> Path:
    return Path(str(resources.files("medqa.resources").joinpath(f"safety/{name}.npz")))


# ------------------------------------------------------------------ reading


@dataclass
class Reading:
    """The windows of one text that MiniLM read, with their embeddings."""

    windows: list[Window]
    embeddings: np.ndarray
    total_windows: int


def reading_windows(text: str) -> list[Window]:
    if len(text.split()) <= SHORT_WORDS:
        return [Window(text, 0, len(text))]
    return windows(text)


def _words(w: Window) -> int:
    return len(w.text.split())


def select(ws: list[Window], screens: list[np.ndarray]) -> list[int]:
    """Windows for MiniLM: all of a short text; else the screens' best, taken in
    turn from each screen's ranking, until the word budget is spent."""
    if sum(map(_words, ws)) <= FULL_READ_WORDS:
        return list(range(len(ws)))
    rankings = [list(np.argsort(-s, kind="stable")) for s in screens]
    chosen: list[int] = []
    budget = SCREENED_WORDS
    for rank in range(len(ws)):
        for ranking in rankings:
            i = int(ranking[rank])
            if i in chosen:
                continue
            if chosen and _words(ws[i]) > budget:
                return sorted(chosen)
            chosen.append(i)
            budget -= _words(ws[i])
    return sorted(chosen)


class WindowReader:
    """Reads texts in windows for a set of checks (their static screen heads)."""

    def __init__(self, screens: list[LinearHead], embedder=None, static=None):
        self.screens = screens
        self._embedder, self._static = embedder, static

    @property
    def embedder(self):
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    @property
    def static(self):
        if self._static is None:
            self._static = shared_static_embedder()
        return self._static

    def load(self) -> None:
        """Load both embedders now rather than on the first text that needs each."""
        self._embedder, self._static = self.embedder, self.static

    def read_many(self, texts: list[str]) -> list[Reading]:
        """One MiniLM pass over the chosen windows of all texts."""
        per_text = [reading_windows(t) for t in texts]
        chosen = [self._choose(ws) for ws in per_text]
        flat = [ws[i].text for ws, idx in zip(per_text, chosen) for i in idx]
        emb = self.embedder.encode(flat)
        out, at = [], 0
        for ws, idx in zip(per_text, chosen):
            out.append(Reading([ws[i] for i in idx], emb[at:at + len(idx)], len(ws)))
            at += len(idx)
        return out

    def _choose(self, ws: list[Window]) -> list[int]:
        if sum(map(_words, ws)) <= FULL_READ_WORDS:
            return list(range(len(ws)))
        static = self.static.encode([w.text for w in ws])
        return select(ws, [h.positive(static) for h in self.screens])


class LearnedCheck:
    """One check's heads with a reader of its own; subclasses name their packaged
    heads (`NAME`) and turn a reading into a verdict."""

    NAME = ""

    def __init__(self, heads: HeadSet | str | Path | None = None, embedder=None, static=None):
        self.heads = heads if isinstance(heads, HeadSet) else HeadSet.load(heads or packaged_head(self.NAME))
        self.reader = WindowReader([self.heads.heads["screen"]], embedder, static)

    @property
    def threshold(self) -> float:
        return self.heads.threshold

    def verdict(self, reading: Reading) -> dict:
        raise NotImplementedError

    def predict(self, texts: list[str]) -> list[dict]:
        return [self.verdict(r) for r in self.reader.read_many(texts)]
