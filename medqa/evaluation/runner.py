"""Score a set of records with a model and assemble the evaluation report (a dict).

`build_report` is pure (records + scores → numbers); `evaluate_model` runs the
scorer (and the rotated copies for permutation consistency) and times it.
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from medqa.data.record import LETTERS, MCQRecord
from medqa.evaluation import metrics
from medqa.modeling.scoring import MCQScore, score_records

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


def evaluate_model(
    model,
    tokenizer,
    records: Sequence[MCQRecord],
    method: str = "letter",
    batch_size: int = 8,
    consistency_n: int = 100,
    shift: int = 1,
    progress: bool = False,
) -> tuple[dict, list[MCQScore]]:
    """Score `records` (all must have answers) and build the report.

    Timing covers the main scoring pass only, so seconds per question does not
    depend on how many rotated copies are scored for consistency.
    """
    records = list(records)
    if not records:
        raise ValueError("no records to evaluate")
    if any(r.answer_index is None for r in records):
        raise ValueError("every evaluated record needs an answer_index")
    start = time.perf_counter()
    scores = score_records(model, tokenizer, records, method=method, batch_size=batch_size, progress=progress)
    seconds = time.perf_counter() - start
    report = build_report(records, scores, seconds, method)
    report["permutation_consistency"] = _consistency(model, tokenizer, records, scores, method, batch_size,
                                                     consistency_n, shift, progress)
    report["predictions"] = prediction_rows(records, scores)
    return report, scores


def _consistency(model, tokenizer, records, scores, method, batch_size, consistency_n, shift,
                 progress) -> Optional[dict]:
    if consistency_n <= 0:
        return None
    rotated = [metrics.rotate_record(r, shift) for r in records[:consistency_n]]
    rotated_scores = score_records(model, tokenizer, rotated, method=method, batch_size=batch_size, progress=progress)
    return consistency_summary(records, scores, rotated, rotated_scores, shift)
