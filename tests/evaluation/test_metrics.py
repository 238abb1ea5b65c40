"""Pure metric functions: hand-checkable cases, milliseconds each."""

import random

import pytest

from medqa.data.record import MCQRecord
from medqa.evaluation import metrics


def test_ece_of_perfectly_calibrated_set_is_near_zero():
    # In each bin the share correct equals the confidence exactly.
    confidences, correct = [], []
    for conf, n_right in [(0.25, 1), (0.55, 11), (0.75, 3), (0.95, 19)]:
        total = {0.25: 4, 0.55: 20, 0.75: 4, 0.95: 20}[conf]
        confidences += [conf] * total
        correct += [True] * n_right + [False] * (total - n_right)
    assert metrics.expected_calibration_error(confidences, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_of_sampled_calibrated_set_is_small_and_overconfident_set_is_large():
    rng = random.Random(0)
    confidences = [rng.uniform(0.25, 1.0) for _ in range(20000)]
    calibrated = [rng.random() < c for c in confidences]
    assert metrics.expected_calibration_error(confidences, calibrated) < 0.02
    # Says 95% but is right a quarter of the time.
    overconfident = [rng.random() < 0.25 for _ in confidences]
    ece = metrics.expected_calibration_error([0.95] * len(confidences), overconfident)
    assert ece == pytest.approx(0.70, abs=0.02)


def test_reliability_bins_are_equal_width_and_count_everything():
    bins = metrics.reliability_bins([0.0, 0.05, 0.1, 0.5, 0.99, 1.0], [1, 0, 1, 1, 0, 1], n_bins=10)
    assert len(bins) == 10
    assert [b["count"] for b in bins] == [2, 1, 0, 0, 0, 1, 0, 0, 0, 2]
    assert bins[0]["accuracy"] == 0.5 and bins[0]["confidence"] == pytest.approx(0.025)
    assert bins[2]["accuracy"] is None
    with pytest.raises(ValueError):
        metrics.reliability_bins([1.5], [True])


def test_coverage_curve_keeps_the_most_confident_answers():
    conf = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
    correct = [1, 1, 1, 1, 0, 1, 0, 0, 0, 0]
    points = {p["coverage"]: p for p in metrics.coverage_curve(conf, correct)}
    assert points[1.0]["accuracy"] == 0.5 and points[1.0]["threshold"] == 0.05
    assert points[0.4]["accuracy"] == 1.0 and points[0.4]["threshold"] == 0.6 and points[0.4]["n_answered"] == 4
    assert points[0.5]["accuracy"] == pytest.approx(0.8)


@pytest.mark.parametrize(
    "answers, expected",
    [([0, 0, 1, 2], dict(position=0, letter="A", accuracy=0.5)),
     ([3, 3, 3, 1], dict(position=3, letter="D", accuracy=0.75))],
)
def test_majority_baseline(answers, expected):
    assert metrics.majority_baseline(answers) == expected


def test_confusion_and_chance_and_per_group():
    assert metrics.confusion_matrix([0, 1, 1, 3], [0, 0, 1, 2]) == [[1, 0, 0, 0], [1, 1, 0, 0],
                                                                    [0, 0, 0, 0], [0, 0, 1, 0]]
    assert metrics.chance_baseline([4, 4, 4]) == 0.25
    groups = metrics.per_group_accuracy(["a", "b", "a", "a"], [True, False, False, True])
    assert groups == {"a": dict(n=3, correct=2, accuracy=2 / 3), "b": dict(n=1, correct=0, accuracy=0.0)}
    with pytest.raises(ValueError):
        metrics.confusion_matrix([0], [0, 1])


def test_rotation_moves_answer_with_its_text_and_consistency_compares_texts():
    rec = MCQRecord(question="q", options=["w", "x", "y", "z"], answer_index=1)
    rotated = metrics.rotate_record(rec, 1)
    assert rotated.options == ["z", "w", "x", "y"]
    assert rotated.answer_text == "x" and rec.options == ["w", "x", "y", "z"]
    assert metrics.rotate_record(rec, 4).options == rec.options
    assert metrics.permutation_consistency(["a", "b", "c", "d"], ["a", "b", "x", "y"]) == 0.5
