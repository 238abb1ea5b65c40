"""Pure metric functions over scored multiple-choice answers (no torch, no I/O).

Inputs are plain lists: `confidences` (probability of the chosen option),
`correct` (bools), answer / predicted positions (0-based ints).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Sequence

from medqa.data.record import LETTERS, MCQRecord

DEFAULT_COVERAGES = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1)


def _check_same_length(*seqs: Sequence) -> int:
    lengths = {len(s) for s in seqs}
    if len(lengths) != 1:
        raise ValueError(f"inputs differ in length: {sorted(lengths)}")
    return lengths.pop()


def accuracy(correct: Sequence[bool]) -> float:
    return sum(bool(c) for c in correct) / len(correct) if correct else 0.0


def reliability_bins(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> list[dict]:
    """Equal-width confidence bins over [0, 1]: count, mean confidence and accuracy of each.

    A confidence of exactly 1.0 falls in the last bin; empty bins are kept (count 0)
    so a diagram always has `n_bins` bars.
    """
    _check_same_length(confidences, correct)
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    members: list[list[int]] = [[] for _ in range(n_bins)]
    for i, conf in enumerate(confidences):
        if not 0.0 <= conf <= 1.0 or math.isnan(conf):
            raise ValueError(f"confidence {conf!r} is not a probability")
        members[min(int(conf * n_bins), n_bins - 1)].append(i)
    bins = []
    for b, idx in enumerate(members):
        bins.append(
            dict(
                lower=b / n_bins,
                upper=(b + 1) / n_bins,
                count=len(idx),
                confidence=sum(confidences[i] for i in idx) / len(idx) if idx else None,
                accuracy=sum(bool(correct[i]) for i in idx) / len(idx) if idx else None,
            )
        )
    return bins


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], n_bins: int = 10) -> float:
    """ECE = sum over equal-width bins of (bin share) * |accuracy - mean confidence|."""
    n = len(confidences)
    if n == 0:
        return 0.0
    bins = reliability_bins(confidences, correct, n_bins)
    return sum(b["count"] / n * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"])


def coverage_curve(
    confidences: Sequence[float], correct: Sequence[bool], coverages: Sequence[float] = DEFAULT_COVERAGES
) -> list[dict]:
    """Accuracy when abstaining on the least confident questions.

    For each target coverage c, the ceil(c * n) most confident answers are kept;
    `threshold` is the lowest confidence kept (answer when confidence >= threshold).
    Ties are broken by input order, so the kept count is exact.
    """
    n = _check_same_length(confidences, correct)
    if n == 0:
        return []
    order = sorted(range(n), key=lambda i: -confidences[i])
    points = []
    for c in coverages:
        if not 0 < c <= 1:
            raise ValueError(f"coverage {c} is not in (0, 1]")
        kept = order[: max(1, math.ceil(c * n - 1e-9))]
        points.append(
            dict(
                coverage=len(kept) / n,
                threshold=confidences[kept[-1]],
                n_answered=len(kept),
                accuracy=accuracy([correct[i] for i in kept]),
            )
        )
    return points


def confusion_matrix(answers: Sequence[int], predictions: Sequence[int], n_options: int = 4) -> list[list[int]]:
    """counts[true position][predicted position]."""
    _check_same_length(answers, predictions)
    counts = [[0] * n_options for _ in range(n_options)]
    for a, p in zip(answers, predictions):
        counts[a][p] += 1
    return counts


def position_distribution(indices: Sequence[int], n_options: int = 4) -> dict[str, float]:
    """Share of each letter among `indices` (answers or predictions)."""
    counts = Counter(indices)
    total = len(indices) or 1
    return {LETTERS[i]: counts.get(i, 0) / total for i in range(n_options)}


def majority_baseline(answers: Sequence[int]) -> dict:
    """Accuracy of always picking the most common answer position in these data."""
    if not answers:
        return dict(position=None, letter=None, accuracy=0.0)
    position, count = Counter(answers).most_common(1)[0]
    return dict(position=position, letter=LETTERS[position], accuracy=count / len(answers))


def chance_baseline(n_options: Sequence[int]) -> float:
    """Expected accuracy of a uniform random guess."""
    return sum(1 / k for k in n_options) / len(n_options) if n_options else 0.0


def per_group_accuracy(groups: Sequence[str], correct: Sequence[bool]) -> dict[str, dict]:
    """{group: {n, correct, accuracy}}, largest groups first."""
    _check_same_length(groups, correct)
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for g, c in zip(groups, correct):
        tally[g][0] += 1
        tally[g][1] += bool(c)
    ordered = sorted(tally.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {g: dict(n=n, correct=k, accuracy=k / n) for g, (n, k) in ordered}


def rotate_record(record: MCQRecord, shift: int = 1) -> MCQRecord:
    """The same question with its options rotated cyclically by `shift` positions
    (option i moves to position i + shift), the answer index following its text."""
    k = len(record.options)
    shift %= k
    options = [record.options[(i - shift) % k] for i in range(k)]
    answer = None if record.answer_index is None else (record.answer_index + shift) % k
    return MCQRecord(**{**record.__dict__, "options": options, "answer_index": answer})


def permutation_consistency(original_texts: Sequence[str], permuted_texts: Sequence[str]) -> float:
    """Share of questions whose chosen answer TEXT is unchanged after shuffling the options."""
    n = _check_same_length(original_texts, permuted_texts)
    return sum(a == b for a, b in zip(original_texts, permuted_texts)) / n if n else 0.0
