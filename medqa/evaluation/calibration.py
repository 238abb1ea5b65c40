"""Calibrated answers, the pure core of `medqa calibrate` and of `medqa evaluate --calibration ...
--conformal-alpha A --permutations K` (no model, no Ray, no I/O beyond the artefact file).

Three independent pieces, applied in this order to a question's per-option comparison scores
(`medqa.modeling.scoring.comparison_scores`, the numbers `MCQScore.probabilities` is the softmax of):

1. Temperature scaling (`fit_temperature`, `scaled_probs`): one scalar T fitted by NLL on a
   calibration split; it changes confidences, never the ranking of a question's options.
2. Position debiasing (`rotations`, `debiased_probs`): score K cyclic rotations of the options and
   average each option's probability by its text, so the answer does not depend on its letter.
3. Split conformal prediction sets (`fit_conformal`, `prediction_sets`, `set_report`): the options
   whose LAC score 1 - p is at most a threshold fitted on the calibration split; Mondrian (one
   threshold per subject) where a subject has enough calibration rows, pooled otherwise.

Conformal thresholds are valid only for probabilities produced the same way as on the calibration
rows (same temperature, same number of rotations) and for the `alpha` they were fitted at.

Questions may have different numbers of options (MedQA 4 or 5, MedMCQA 4): every function takes
one sequence per question; internally rows are padded with -inf scores (probability 0), and padded
positions are never part of a set or a prediction.
"""

from __future__ import annotations

import json
import math
import warnings
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from medqa.data.record import MCQRecord
from medqa.evaluation import metrics

FORMAT = 1
"""Version of the JSON artefact; `Calibration.load` refuses any other."""
SCORE = "lac"
TEMPERATURE_BOUNDS = (0.05, 20.0)

Rows = Sequence[Sequence[float]]
"""One row per question, one number per option (rows may differ in length)."""


# ---------------------------------------------------------------------------
# Ragged rows
# ---------------------------------------------------------------------------


def _padded(rows: Rows, fill: float) -> np.ndarray:
    """(N, max options) float array; short rows filled with `fill`."""
    if not len(rows):
        raise ValueError("no rows")
    out = np.full((len(rows), max(len(r) for r in rows)), fill, dtype=float)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return out


def _labels(labels: Sequence[int], rows: Rows) -> np.ndarray:
    if len(labels) != len(rows):
        raise ValueError(f"{len(labels)} labels for {len(rows)} rows")
    y = np.asarray(labels, dtype=int)
    widths = np.array([len(r) for r in rows])
    bad = np.flatnonzero((y < 0) | (y >= widths))
    if bad.size:
        raise ValueError(f"label {y[bad[0]]} of row {bad[0]} is not one of its {widths[bad[0]]} options")
    return y


def _softmax(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    from scipy.special import softmax

    return softmax(scores / temperature, axis=1)


# ---------------------------------------------------------------------------
# Temperature scaling
# ---------------------------------------------------------------------------


def fit_temperature(scores: Rows, labels: Sequence[int], bounds: tuple[float, float] = TEMPERATURE_BOUNDS) -> float:
    """The T > 0 minimising the mean NLL of softmax(scores / T) at the labels (Guo et al. 2017).

    Searched on log T (bounded Brent): that keeps T positive and treats sharpening and softening
    alike. A result at a bound means the data ask for more (e.g. a split the model gets all right).
    """
    from scipy.optimize import minimize_scalar
    from scipy.special import log_softmax

    z, y = _padded(scores, -np.inf), _labels(labels, scores)
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / math.exp(log_t), axis=1)[rows, y].mean())

    result = minimize_scalar(nll, bounds=(math.log(bounds[0]), math.log(bounds[1])), method="bounded",
                             options={"xatol": 1e-6})
    return float(math.exp(result.x))


def scaled_probs(scores: Rows, temperature: float = 1.0) -> list[list[float]]:
    """softmax(scores / T) per question; T = 1 gives `MCQScore.probabilities` back."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    probs = _softmax(_padded(scores, -np.inf), temperature)
    return [probs[i, : len(row)].tolist() for i, row in enumerate(scores)]


def calibration_error(probs: Rows, labels: Sequence[int]) -> float:
    """ECE of the top answer (`metrics.expected_calibration_error`, 10 equal-width bins)."""
    p, y = _padded(probs, 0.0), _labels(labels, probs)
    top = p.argmax(axis=1)
    return metrics.expected_calibration_error(p.max(axis=1).tolist(), (top == y).tolist())


# ---------------------------------------------------------------------------
# Position debiasing
# ---------------------------------------------------------------------------


def rotations(record: MCQRecord, k: int) -> list[MCQRecord]:
    """The record under shifts 0..k-1 (`metrics.rotate_record`: option i moves to i + shift).

    Rotation 0 is the record as listed. k is capped at the number of options: further
    rotations would repeat one already scored.
    """
    if k < 1:
        raise ValueError(f"the number of rotations must be at least 1, got {k}")
    return [metrics.rotate_record(record, shift) for shift in range(min(k, len(record.options)))]


def _original_positions(original: Sequence[str], presented: Sequence[str]) -> list[int]:
    """Where each presented option sits in `original`, matched by text. Options with the same
    text are the same answer, so their occurrences are paired in order."""
    free: dict[str, deque[int]] = defaultdict(deque)
    for i, text in enumerate(original):
        free[text].append(i)
    try:
        positions = [free[text].popleft() for text in presented]
    except IndexError:
        positions = []
    if len(positions) != len(original) or len(presented) != len(original):
        raise ValueError(f"options {list(presented)} are not a reordering of {list(original)}")
    return positions


def debiased_probs(per_rotation_probs: Rows, per_rotation_texts: Sequence[Sequence[str]]) -> list[float]:
    """Each option's probability averaged over the rotations it was shown in, matched by TEXT,
    in the order of rotation 0 (the question as listed).

    With as many rotations as options (`rotations(record, len(options))`) every option is seen
    once at every position and the set of orderings scored is the same whichever rotation is
    listed first, so the result, and its argmax, do not depend on where an option is listed.
    With fewer rotations the position prior is only diluted.
    """
    if not per_rotation_probs or len(per_rotation_probs) != len(per_rotation_texts):
        raise ValueError("one probability row and one option list per rotation are needed")
    original = per_rotation_texts[0]
    total = np.zeros(len(original))
    for probs, texts in zip(per_rotation_probs, per_rotation_texts):
        if len(probs) != len(texts):
            raise ValueError(f"{len(probs)} probabilities for {len(texts)} options")
        total[_original_positions(original, texts)] += probs
    return (total / len(per_rotation_probs)).tolist()


def debiased_scores(per_rotation_scores: Rows, per_rotation_texts: Sequence[Sequence[str]]) -> list[float]:
    """The calibration pipeline's input for one question: log of `debiased_probs` of the
    rotations' softmaxed comparison scores, in rotation 0's order.

    With one rotation this is log-softmax of the scores, which temperature scaling treats exactly
    like the scores themselves (softmax is shift-invariant), so K = 1 and K > 1 share one path.
    """
    probs = [_softmax(np.asarray([row], dtype=float))[0] for row in per_rotation_scores]
    averaged = np.asarray(debiased_probs(probs, per_rotation_texts))
    return np.log(np.maximum(averaged, np.finfo(float).tiny)).tolist()  # an underflowed 0 stays finite


# ---------------------------------------------------------------------------
# Split conformal prediction sets
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Conformal:
    """Fitted split-conformal thresholds on the LAC score 1 - p(option)."""

    alpha: float
    """Target miscoverage: a set should hold the answer for at least 1 - alpha of questions."""
    threshold: float
    """Pooled threshold, from every calibration row: for subjects without their own, and unseen ones."""
    subject_thresholds: dict[str, float]
    """Mondrian thresholds, one per subject with at least `min_rows_per_subject` calibration rows."""
    subject_rows: dict[str, int]
    """Calibration rows of every subject seen, including those that use the pooled threshold."""
    min_rows_per_subject: int
    rows: int
    """All calibration rows."""
    score: str = SCORE

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must be in (0, 1), got {self.alpha}")
        if self.score != SCORE:
            raise ValueError(f"unknown nonconformity score {self.score!r}; this version knows {SCORE!r}")
        for name, value in {"pooled": self.threshold, **self.subject_thresholds}.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"threshold {value!r} of {name!r} is not in [0, 1]")
        if self.min_rows_per_subject < 1 or self.rows < 1:
            raise ValueError("min_rows_per_subject and rows must be at least 1")

    def threshold_for(self, subject: Optional[str]) -> float:
        return self.subject_thresholds.get(str(subject), self.threshold)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Conformal":
        return cls(
            alpha=float(data["alpha"]),
            threshold=float(data["threshold"]),
            subject_thresholds={str(k): float(v) for k, v in data["subject_thresholds"].items()},
            subject_rows={str(k): int(v) for k, v in data["subject_rows"].items()},
            min_rows_per_subject=int(data["min_rows_per_subject"]),
            rows=int(data["rows"]),
            score=str(data["score"]),
        )


def lac_scores(probs: Rows, labels: Sequence[int]) -> np.ndarray:
    """Nonconformity of each row's true option: 1 - its probability (LAC)."""
    p, y = _padded(probs, 0.0), _labels(labels, probs)
    return 1.0 - p[np.arange(len(y)), y]


def _crepes_thresholds(scores: np.ndarray, bins: np.ndarray, alpha: float, wanted: Sequence) -> dict:
    """crepes' Mondrian decision rule, written down as one threshold per wanted bin.

    crepes' non-smoothed p-value of a score a in a bin of n calibration scores is
    (#{calibration scores >= a} + 1) / (n + 1), and a set admits a when p >= alpha. p only falls
    as a grows, and only just past a calibration score, so the admitted scores are those up to
    the largest calibration score it admits -- or every score (threshold 1.0, the largest LAC
    score) when even a score above them all (p = 1 / (n + 1)) is admitted.

    p is compared with alpha here rather than through `predict_set(confidence=1 - alpha)`, whose
    1 - (1 - alpha) is off by an ulp for some alphas (0.05, 0.3) and would flip exact ties.
    Smoothing (crepes' default) is off: randomised p-values cannot be one fixed threshold.
    """
    with warnings.catch_warnings():  # crepes sets warnings.simplefilter("always") on import
        from crepes import ConformalClassifier

    classifier = ConformalClassifier().fit(scores, bins=bins)
    thresholds = {}
    for b in wanted:
        candidates = np.append(np.unique(scores[bins == b]), np.inf)
        p = classifier.predict_p(candidates, bins=np.full(len(candidates), b), smoothing=False)
        largest = candidates[p >= alpha].max()  # never empty: the smallest score has p = 1
        thresholds[b] = 1.0 if math.isinf(largest) else float(largest)
    return thresholds


def fit_conformal(probs: Rows, labels: Sequence[int], subjects: Sequence[str], alpha: float = 0.1,
                  min_rows_per_subject: int = 40) -> Conformal:
    """Split conformal thresholds with LAC scores (Sadinle, Lei & Wasserman 2019).

    LAC (1 - p of the true option) rather than APS (the mass of the options ranked above it, plus
    its own): LAC gives the smallest sets on average at the target coverage, which is what a
    reader of four or five options wants; APS buys better coverage per difficulty level, and here
    the Mondrian split per subject already conditions on the strongest difficulty signal we have.
    Subjects with fewer rows than `min_rows_per_subject` use the pooled threshold: with n rows a
    threshold moves by 1 / (n + 1) in coverage per rank, too coarse and noisy for small n.
    """
    if len(subjects) != len(probs):
        raise ValueError(f"{len(subjects)} subjects for {len(probs)} rows")
    if min_rows_per_subject < 1:
        raise ValueError("min_rows_per_subject must be at least 1")
    scores, bins = lac_scores(probs, labels), np.asarray([str(s) for s in subjects])
    names, counts = np.unique(bins, return_counts=True)
    rows = {str(s): int(n) for s, n in zip(names, counts)}
    eligible = [s for s, n in rows.items() if n >= min_rows_per_subject]
    pooled = _crepes_thresholds(scores, np.zeros(len(scores), dtype=int), alpha, [0])[0]
    return Conformal(
        alpha=float(alpha),
        threshold=pooled,
        subject_thresholds={str(s): t for s, t in _crepes_thresholds(scores, bins, alpha, eligible).items()},
        subject_rows=rows,
        min_rows_per_subject=min_rows_per_subject,
        rows=len(scores),
    )


def prediction_sets(probs: Rows, subjects: Sequence[str], conformal: Conformal) -> list[list[int]]:
    """Per question, the option indices (ascending) whose LAC score is within its subject's threshold.

    Never empty: when the threshold admits no option (every probability below 1 - threshold),
    the set is the top option alone. That only adds coverage, and an empty answer helps nobody.
    """
    if len(subjects) != len(probs):
        raise ValueError(f"{len(subjects)} subjects for {len(probs)} rows")
    sets = []
    for row, subject in zip(probs, subjects):
        p = np.asarray(row, dtype=float)
        members = np.flatnonzero(1.0 - p <= conformal.threshold_for(subject)).tolist()
        sets.append(members or [int(p.argmax())])
    return sets


def _set_summary(sets: Sequence[Sequence[int]], labels: Sequence[int]) -> dict:
    n = len(sets)
    return dict(
        n=n,
        coverage=sum(y in s for s, y in zip(sets, labels)) / n if n else 0.0,
        mean_set_size=sum(len(s) for s in sets) / n if n else 0.0,
    )


def set_report(sets: Sequence[Sequence[int]], labels: Sequence[int], subjects: Sequence[str],
               alpha: Optional[float] = None) -> dict:
    """Coverage and mean set size, overall and per subject (largest subjects first), as the
    evaluation report's `conformal` entry; `alpha` is included when given."""
    if not len(sets) == len(labels) == len(subjects):
        raise ValueError("one set, label and subject per question are needed")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, subject in enumerate(subjects):
        groups[str(subject)].append(i)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    report = {} if alpha is None else {"alpha": alpha}
    report |= _set_summary(sets, labels)
    report["per_subject"] = {
        s: _set_summary([sets[i] for i in idx], [labels[i] for i in idx]) for s, idx in ordered
    }
    return report


# ---------------------------------------------------------------------------
# The artefact
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CalibrationData:
    """What the calibration was fitted on."""

    rows: int
    source: str = ""
    """The calibration split (file or hub id), for reports."""
    ece_before: float = 0.0
    """ECE of the top answer on the calibration rows at T = 1."""
    ece_after: float = 0.0
    """The same after temperature scaling (in-sample: the split T was fitted on)."""


@dataclass(frozen=True)
class Calibration:
    """Temperature + conformal thresholds, saved as versioned JSON by `medqa calibrate`.

    `permutations` and `method` say how the scores it was fitted on were made (K rotations of
    the options through `debiased_scores`, the scorer's method); the thresholds hold only for
    scores made the same way, so whoever applies it scores questions that way too.
    """

    temperature: float
    conformal: Conformal
    data: CalibrationData = field(default_factory=lambda: CalibrationData(rows=0))
    permutations: int = 1
    method: str = "letter"

    def __post_init__(self):
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature!r}")
        if self.permutations < 1:
            raise ValueError(f"permutations must be at least 1, got {self.permutations!r}")

    def probs(self, scores: Rows) -> list[list[float]]:
        return scaled_probs(scores, self.temperature)

    def answer_sets(self, scores: Rows, subjects: Sequence[str]) -> tuple[list[list[float]], list[list[int]]]:
        """(calibrated probabilities, conformal prediction sets) for questions scored like the
        calibration rows (`debiased_scores` over `permutations` rotations)."""
        probs = self.probs(scores)
        return probs, prediction_sets(probs, subjects, self.conformal)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "temperature": self.temperature, "permutations": self.permutations,
                "method": self.method, "conformal": self.conformal.to_dict(), "data": asdict(self.data)}

    @classmethod
    def from_dict(cls, data: object) -> "Calibration":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f'not a medqa calibration: expected "format": {FORMAT}, found {found!r}')
        try:
            return cls(temperature=float(data["temperature"]), conformal=Conformal.from_dict(data["conformal"]),
                       data=CalibrationData(**data["data"]), permutations=int(data["permutations"]),
                       method=str(data["method"]))
        except KeyError as err:
            raise ValueError(f"corrupt medqa calibration: missing key {err}") from err
        except (TypeError, ValueError, AttributeError) as err:
            raise ValueError(f"corrupt medqa calibration: {err}") from err

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Calibration":
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except ValueError as err:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise ValueError(f"{path}: {err}") from err


def fit_calibration(scores: Rows, labels: Sequence[int], subjects: Sequence[str], alpha: float = 0.1,
                    source: str = "", min_rows_per_subject: int = 40, permutations: int = 1,
                    method: str = "letter") -> Calibration:
    """Temperature on the calibration rows' scores, then conformal thresholds on the scaled
    probabilities of the same rows (the order they are applied in). `permutations` and `method`
    record how `scores` were made."""
    temperature = fit_temperature(scores, labels)
    before, after = scaled_probs(scores, 1.0), scaled_probs(scores, temperature)
    return Calibration(
        temperature=temperature,
        conformal=fit_conformal(after, labels, subjects, alpha, min_rows_per_subject),
        data=CalibrationData(rows=len(labels), source=source, ece_before=calibration_error(before, labels),
                             ece_after=calibration_error(after, labels)),
        permutations=permutations,
        method=method,
    )
