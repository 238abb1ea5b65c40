"""Safety reports normalised, decided and merged; an MCQ's answer from its probabilities (no Ray, no model)."""

from __future__ import annotations

import pytest

from medqa.serving import verdicts


@pytest.mark.parametrize(
    "raw, risk, decision",
    [
        ({}, 0, verdicts.ANSWER),
        ({"risk_level": 1, "categories": ["dosage"], "warnings": ["dose above the usual maximum"]}, 1, verdicts.ANSWER),
        ({"risk_level": 3, "categories": ["emergency"]}, 3, verdicts.EMERGENCY),
        ({"risk_level": 0, "categories": ["emergency"]}, 3, verdicts.EMERGENCY),  # emergency is always critical
        ({"risk_level": 2, "categories": ["harmful_request"], "blocked": True}, 2, verdicts.REFUSE),
        ({"risk_level": 2, "categories": ["harmful_request"]}, 2, verdicts.REFUSE),
        ({"risk_level": 3, "categories": ["emergency", "harmful_request"], "blocked": True}, 3, verdicts.EMERGENCY),
        ({"risk_level": 9}, 3, verdicts.ANSWER),  # clamped, but nothing to act on
    ],
)
def test_reports_are_normalised_and_decided(raw, risk, decision):
    report = verdicts.normalise_report(raw)
    assert report["risk_level"] == risk
    assert set(report) >= {"checked", "risk_level", "categories", "warnings", "blocked", "actions"}
    assert verdicts.decide(report) == decision


def test_report_objects_and_unserialisable_fields_are_accepted():
    class Report:
        def __init__(self):
            self.risk_level, self.categories = 2, ("drug_interaction",)
            self.warnings, self.blocked = "warfarin + aspirin", False
            self.matcher = object()

    report = verdicts.normalise_report(Report())
    assert report["categories"] == ["drug_interaction"] and report["warnings"] == ["warfarin + aspirin"]
    assert "matcher" not in report


def test_merge_keeps_the_worst_risk_and_every_warning_once():
    a = verdicts.normalise_report({"risk_level": 1, "categories": ["dosage"], "warnings": ["w1"]})
    b = verdicts.normalise_report({"risk_level": 2, "categories": ["drug_interaction", "dosage"],
                                   "warnings": ["w1", "w2"]})
    merged = verdicts.merge_reports(a, b)
    assert merged["risk_level"] == 2
    assert merged["categories"] == ["dosage", "drug_interaction"] and merged["warnings"] == ["w1", "w2"]


def test_mcq_answer_and_abstention():
    out = verdicts.mcq_answer([0.1, 0.6, 0.2, 0.1], ["a", "b", "c", "d"], threshold=0.35)
    assert (out["answer_index"], out["answer_letter"], out["answer_text"], out["abstained"]) == (1, "B", "b", False)
    assert verdicts.mcq_answer([0.3, 0.25, 0.25, 0.2], list("abcd"), threshold=0.35)["abstained"] is True


@pytest.mark.parametrize(
    "probabilities, members, letters, abstained",
    [
        ([0.1, 0.6, 0.2, 0.1], [1], ["B"], False),  # confident and a set of one: answered
        ([0.3, 0.25, 0.25, 0.2], [0], ["A"], False),  # below the fixed threshold, but the calibrated set is one
        ([0.05, 0.9, 0.03, 0.02], [3, 1], ["B", "D"], True),  # a set of two abstains however confident
        ([0.25, 0.25, 0.25, 0.25], [0, 1, 2, 3], list("ABCD"), True),
    ],
)
def test_a_calibrated_answer_carries_its_set_and_abstains_on_more_than_one_option(probabilities, members, letters,
                                                                                   abstained):
    out = verdicts.mcq_answer(probabilities, list("abcd"), threshold=0.35, prediction_set=members, set_coverage=0.9)
    assert (out["prediction_set"], out["set_coverage"], out["abstained"]) == (letters, 0.9, abstained)
    assert out["answer_letter"] in out["prediction_set"]


def test_an_uncalibrated_answer_has_no_set_fields():
    assert not {"prediction_set", "set_coverage"} & set(verdicts.mcq_answer([0.7, 0.1, 0.1, 0.1], list("abcd"), 0.35))
