"""Score a set of records with a model and assemble the evaluation report (a dict).

`build_report` is pure (records + scores → numbers); `evaluate_model` runs a `Scorer` over
the questions (and their rotated copies, for debiasing and permutation consistency), times it,
and adds the calibrated figures when given a calibration.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

from medqa.data.record import LETTERS, MCQRecord
from medqa.evaluation import calibration, metrics
from medqa.modeling.scoring import MCQScore, comparison_scores, score_records

N_BINS = 10


def prediction_rows(records: Sequence[MCQRecord], scores: Sequence[MCQScore]) -> list[dict]:
    return [
        dict(
            id=r.id,
            subject=r.subject,
            answer=r.answer_index,
            predicted=s.predicted_index,
            correct=s.predicted_index == r.answer_index,
            confidence=round(s.confidence, 6),
            probabilities=[round(p, 6) for p in s.probabilities],
        )
        for r, s in zip(records, scores)
    ]


def consistency_summary(
    records: Sequence[MCQRecord], scores: Sequence[MCQScore], rotated: Sequence[MCQRecord],
    rotated_scores: Sequence[MCQScore], shift: int,
) -> dict:
    """How often the chosen answer text survives a cyclic rotation of the options."""
    n = len(rotated)
    original_texts = [r.options[s.predicted_index] for r, s in zip(records[:n], scores[:n])]
    rotated_texts = [r.options[s.predicted_index] for r, s in zip(rotated, rotated_scores)]
    return dict(
        n=n,
        shift=shift,
        consistency=metrics.permutation_consistency(original_texts, rotated_texts),
        changed=[i for i, (a, b) in enumerate(zip(original_texts, rotated_texts)) if a != b],
        accuracy_original=metrics.accuracy([s.predicted_index == r.answer_index
                                            for r, s in zip(records[:n], scores[:n])]),
        accuracy_rotated=metrics.accuracy([s.predicted_index == r.answer_index
                                           for r, s in zip(rotated, rotated_scores)]),
    )


def build_report(records: Sequence[MCQRecord], scores: Sequence[MCQScore], seconds: float,
                 method: str = "letter") -> dict:
    """Accuracy, baselines, calibration, coverage and position statistics (pure)."""
    if len(records) != len(scores):
        raise ValueError("one score per record is needed")
    answers = [r.answer_index for r in records]
    predicted = [s.predicted_index for s in scores]
    correct = [a == p for a, p in zip(answers, predicted)]
    confidences = [s.confidence for s in scores]
    n = len(records)
    return dict(
        accuracy=metrics.accuracy(correct),
        n=n,
        n_correct=sum(correct),
        method=method,
        per_subject=metrics.per_group_accuracy([r.subject or "Unknown" for r in records], correct),
        baselines=_baselines(records),
        ece=metrics.expected_calibration_error(confidences, correct, N_BINS),
        ece_bins=N_BINS,
        mean_confidence=sum(confidences) / n if n else 0.0,
        reliability=metrics.reliability_bins(confidences, correct, N_BINS),
        coverage=metrics.coverage_curve(confidences, correct),
        confusion=dict(labels=list(LETTERS), rows="answer", columns="predicted",
                       matrix=metrics.confusion_matrix(answers, predicted)),
        answer_distribution=metrics.position_distribution(answers),
        prediction_distribution=metrics.position_distribution(predicted),
        seconds_total=seconds,
        seconds_per_question=seconds / n if n else 0.0,
    )


def _baselines(records: Sequence[MCQRecord]) -> dict:
    majority = metrics.majority_baseline([r.answer_index for r in records])
    return dict(
        chance=metrics.chance_baseline([len(r.options) for r in records]),
        majority=majority["accuracy"],
        majority_letter=majority["letter"],
    )


Scorer = Callable[[Sequence[MCQRecord]], list[MCQScore]]
"""Scores records in order: `local_scorer` in this process, `distributed.ray_scorer` on Ray Data."""


def local_scorer(model, tokenizer, method: str = "letter", batch_size: int = 8, progress: bool = False) -> Scorer:
    def score(records: Sequence[MCQRecord]) -> list[MCQScore]:
        return score_records(model, tokenizer, list(records), method=method, batch_size=batch_size, progress=progress)

    return score


@dataclass
class Rotated:
    """A set of questions scored under K cyclic rotations of their options (one scorer call)."""

    scores: list[MCQScore]
    """Each question as listed (rotation 0): the raw scores."""
    shifted: list[list[MCQScore]]
    """Per question, the scores of rotations 1..K-1 (empty lists when K = 1)."""
    debiased: list[list[float]]
    """Per question, `calibration.debiased_scores` over its rotations, in the listed order."""


def score_rotated(scorer: Scorer, records: Sequence[MCQRecord], permutations: int = 1) -> Rotated:
    per_question = [calibration.rotations(r, permutations) for r in records]
    flat = scorer([rotated for group in per_question for rotated in group])
    scores, shifted, debiased, at = [], [], [], 0
    for group in per_question:
        mine, at = flat[at: at + len(group)], at + len(group)
        scores.append(mine[0])
        shifted.append(mine[1:])
        debiased.append(calibration.debiased_scores([comparison(s) for s in mine], [r.options for r in group]))
    return Rotated(scores, shifted, debiased)


def comparison(score: MCQScore) -> list[float]:
    """The numbers the scorer's softmax is taken over (log-likelihood, or per byte for `text`)."""
    return comparison_scores(score.loglikelihoods, score.continuation_bytes, score.method)


def debiased_summary(records: Sequence[MCQRecord], rotated: Rotated, permutations: int) -> dict:
    """Raw vs position-debiased accuracy, beside the always-majority baseline."""
    answers = [r.answer_index for r in records]
    predicted = [max(range(len(row)), key=row.__getitem__) for row in rotated.debiased]
    return dict(
        permutations=permutations,
        accuracy=metrics.accuracy([p == a for p, a in zip(predicted, answers)]),
        accuracy_raw=metrics.accuracy([s.predicted_index == a for s, a in zip(rotated.scores, answers)]),
        majority=metrics.majority_baseline(answers)["accuracy"],
        prediction_distribution=metrics.position_distribution(predicted),
        changed=sum(p != s.predicted_index for p, s in zip(predicted, rotated.scores)),
    )


def calibrated_summary(records: Sequence[MCQRecord], rotated: Rotated, cal: calibration.Calibration) -> dict:
    """The report's `calibration` and `conformal` entries, on the evaluated rows, and the
    calibrated probabilities and answer sets of each question."""
    answers = [r.answer_index for r in records]
    subjects = [r.subject or "Unknown" for r in records]
    before = calibration.scaled_probs(rotated.debiased, 1.0)
    probs, sets = cal.answer_sets(rotated.debiased, subjects)
    top = [max(range(len(p)), key=p.__getitem__) for p in probs]
    hits = [t == a for t, a in zip(top, answers)]
    return dict(
        calibration=dict(
            temperature=cal.temperature,
            ece=calibration.calibration_error(probs, answers),
            ece_before=calibration.calibration_error(before, answers),
            reliability=metrics.reliability_bins([max(p) for p in probs], hits, N_BINS),
            reliability_before=metrics.reliability_bins([max(p) for p in before],
                                                        [max(range(len(p)), key=p.__getitem__) == a
                                                         for p, a in zip(before, answers)], N_BINS),
            permutations=cal.permutations,
            fitted_on=asdict(cal.data),
        ),
        conformal=calibration.set_report(sets, answers, subjects, alpha=cal.conformal.alpha)
        | dict(target_coverage=1 - cal.conformal.alpha,
               mondrian_subjects=sorted(cal.conformal.subject_thresholds)),
        probabilities=probs,
        sets=sets,
    )


def fit_on(scorer: Scorer, records: Sequence[MCQRecord], alpha: float = 0.1, permutations: int = 1,
           method: str = "letter", source: str = "", min_rows_per_subject: int = 40) -> calibration.Calibration:
    """A calibration fitted on `records` (labelled), scored as evaluated questions will be."""
    records = list(records)
    if any(r.answer_index is None for r in records):
        raise ValueError("every calibration record needs an answer_index")
    rotated = score_rotated(scorer, records, permutations)
    return calibration.fit_calibration(
        rotated.debiased, [r.answer_index for r in records], [r.subject or "Unknown" for r in records],
        alpha=alpha, source=source, min_rows_per_subject=min_rows_per_subject, permutations=permutations,
        method=method)


def evaluate_model(
    scorer: Scorer,
    records: Sequence[MCQRecord],
    method: str = "letter",
    consistency_n: int = 100,
    permutations: int = 1,
    calibrated: Optional[calibration.Calibration] = None,
    shift: int = 1,
) -> tuple[dict, Rotated]:
    """Score `records` (all must have answers) under `permutations` rotations and build the
    report; with a calibration, add its `calibration` and `conformal` entries.

    Timing covers the main scoring pass only (all rotations), so seconds per question does not
    depend on how many rotated copies are scored for consistency.
    """
    records = list(records)
    if not records:
        raise ValueError("no records to evaluate")
    if any(r.answer_index is None for r in records):
        raise ValueError("every evaluated record needs an answer_index")
    if calibrated is not None and (calibrated.permutations, calibrated.method) != (permutations, method):
        raise ValueError(f"the calibration was fitted on {calibrated.method!r} scores over {calibrated.permutations} "
                         f"rotation(s); these are {method!r} over {permutations}: use the same or refit it")
    start = time.perf_counter()
    rotated = score_rotated(scorer, records, permutations)
    seconds = time.perf_counter() - start
    report = build_report(records, rotated.scores, seconds, method)
    report["permutation_consistency"] = _consistency(scorer, records, rotated, consistency_n, shift)
    report["predictions"] = prediction_rows(records, rotated.scores)
    if permutations > 1:
        report["debiased"] = debiased_summary(records, rotated, permutations)
    if calibrated is not None:
        extra = calibrated_summary(records, rotated, calibrated)
        for row, probs, members in zip(report["predictions"], extra.pop("probabilities"), extra.pop("sets")):
            row["calibrated_probabilities"] = [round(p, 6) for p in probs]
            row["prediction_set"] = members
        report |= extra
    return report, rotated


def _consistency(scorer: Scorer, records: list[MCQRecord], rotated: Rotated, consistency_n: int,
                 shift: int) -> Optional[dict]:
    """Permutation consistency over the first `consistency_n` questions; read off the scored
    rotations when there are some (rotation 1 is the shift-by-one copy), else scored here."""
    if consistency_n <= 0:
        return None
    head = records[:consistency_n]
    if shift == 1 and all(rotated.shifted[i] for i in range(len(head))):
        return consistency_summary(head, rotated.scores, [metrics.rotate_record(r, 1) for r in head],
                                   [rotated.shifted[i][0] for i in range(len(head))], 1)
    moved = [metrics.rotate_record(r, shift) for r in head]
    return consistency_summary(head, rotated.scores, moved, scorer(moved), shift)
