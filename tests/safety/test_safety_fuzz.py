"""Never crash: the validator survives any string and any valid patient context."""

import json
import math

from hypothesis import HealthCheck, given, settings, strategies as st

DRUGS = ["paracetamol", "Tylenol", "ibuprofen", "warfarin", "methotrexate", "aspirin", "amoxicillin", "codeine"]
NUMBERS = ["0", "-5", "1e308", "99999999999999999999", "nan", "inf", "0.0001", "1,000", "½", "٣"]
PIECES = st.sampled_from(DRUGS + NUMBERS + ["mg", "g", "mcg", "every", "hours", "0 hours", "a day", "twice", "x",
                                            "tablets of", "for my", "year old", "kg", "I want to die", "\u200b", "’"])
DOSE_TEXT = st.lists(PIECES, max_size=25).map(" ".join)
ANY_TEXT = st.one_of(st.text(max_size=400), DOSE_TEXT)
WORDS = st.lists(st.text(max_size=30), max_size=5)
CONTEXTS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "age": st.one_of(st.none(), st.floats(0, 130)), "weight_kg": st.one_of(st.none(), st.floats(0.01, 500)),
    "pregnant": st.one_of(st.none(), st.booleans()), "breastfeeding": st.one_of(st.none(), st.booleans()),
    "allergies": WORDS, "conditions": WORDS,
    "medications": st.lists(st.sampled_from(DRUGS) | st.text(max_size=20), max_size=5),
}))
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite(v) for v in value)
    return True


def _valid(report: dict, request: bool = True) -> None:
    assert report["risk_level"] in (0, 1, 2, 3)
    assert json.loads(json.dumps(report)) is not None and _finite(report)
    if "emergency" in report["categories"]:
        assert report["risk_level"] == 3
        assert not (request and report["blocked"])  # a request in crisis is never refused


@FUZZ
@given(ANY_TEXT, CONTEXTS)
def test_validate_medical_response_never_crashes(rules_validator, text, context):
    shown, report = rules_validator.validate_medical_response(text, patient_context=context)
    assert isinstance(shown, str)
    _valid(report, request=False)  # an answer's dangerous dose is withheld, emergency or not


@FUZZ
@given(ANY_TEXT, CONTEXTS)
def test_check_request_never_crashes(rules_validator, text, context):
    _valid(rules_validator.check_request(text, patient_context=context))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ANY_TEXT, CONTEXTS)
def test_check_request_with_learned_checks_never_crashes(full_validator, text, context):
    _valid(full_validator.check_request(text, patient_context=context))


def test_the_issue_zero_dose():
    from medqa.safety import MedicalSafetyValidator

    text, report = MedicalSafetyValidator(use_classifier=False).validate_medical_response(
        "Take paracetamol 0 mg every 0 hours")
    assert isinstance(text, str) and report["risk_level"] <= 2
