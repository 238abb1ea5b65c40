"""Property tests: no text and no valid patient context makes the dosage or
contraindication checks raise, and every number they report is finite."""

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from medqa.safety.context import PatientContext, as_context, check_context
from medqa.safety.dosage import check_dosage, extract_doses, limits
from medqa.safety.interactions import default_checker

FUZZ = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
LEXICON = default_checker().lexicon

DRUGS = sorted(limits()) + ["Tylenol", "Tylenol Extra Strength", "Advil", "Panadol", "Calpol", "NSAIDs", "warfarin",
                            "co-amoxiclav", "Bactrim", "isotretinoin", "propranolol", "metformin"]
NUMBERS = st.one_of(
    st.sampled_from(["0", "-0", "-1", "-500", "0.0", ".5", "1,000", "1e999", "1e308", "-1e308", "nan", "NaN", "inf",
                     "-inf", "Infinity", "99999999999999999999", "9" * 400, "٥٠٠", "𝟓", "½", "1-2", "500-1000", "0-0"]),
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
UNITS = st.sampled_from(["mg", "g", "mcg", "µg", "μg", "grams", "milligrams", "mg/kg", "tablets", "tablets of",
                         "x", "kg", "lbs", "years old", "months old", "ml"])
WORDS = st.sampled_from(["every", "hours", "every 0 hours", "every -4 hours", "q0h", "twice a day", "times a day",
                         "a day", "daily", "weekly", "once a week", "at bedtime", "in 24 hours", "per day", "or", "and",
                         "to", "no more than", "maximum", "max", "up to", "do not exceed", "another", "more", "at",
                         "noon", "yesterday", "today", "take", "give my", "year old", ",", ".", ";", "(", ")", "\n"])
GRAMMAR = st.lists(st.one_of(st.sampled_from(DRUGS), NUMBERS, UNITS, WORDS, st.text(max_size=4)),
                   max_size=40).map(" ".join)
NAMES = st.one_of(st.sampled_from(["penicillin", "sulfa", "NSAIDs", "aspirin", "CKD", "asthma", "afib", "pregnant",
                                   "atrial_fibrillation", "heart-failure", "not pregnant", "long QT", "Zestril"]),
                  st.text(max_size=200))
CONTEXTS = st.one_of(st.none(), st.fixed_dictionaries({}, optional={
    "age": st.one_of(st.none(), st.floats(0, 130), st.integers(0, 130)),
    "weight_kg": st.one_of(st.none(), st.floats(0.001, 500), st.integers(1, 500)),
    "pregnant": st.one_of(st.none(), st.booleans()),
    "breastfeeding": st.one_of(st.none(), st.booleans()),
    "allergies": st.lists(NAMES, max_size=5),
    "conditions": st.lists(NAMES, max_size=5),
    "medications": st.lists(st.one_of(st.sampled_from(DRUGS), st.text(max_size=20)), max_size=5),
}))


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _check_all(text: str, ctx) -> None:
    doses = extract_doses(text, LEXICON, ctx)
    assert all(_finite(d.as_dict()) for d in doses)
    flagged = check_dosage(text, LEXICON, ctx)
    assert isinstance(flagged, list) and all(isinstance(d, dict) and _finite(d) for d in flagged)
    warnings = [w for d in flagged for w in d["warnings"]]
    assert not any(re.search(r"\b(?:inf|nan)\b", w) for w in warnings), warnings
    found = check_context(text, LEXICON, ctx)
    assert isinstance(found, list) and all(set(f) == {"kind", "drug", "trigger", "severity", "reason"} for f in found)


@FUZZ
@given(st.text(max_size=300), CONTEXTS)
def test_random_text(text, ctx):
    _check_all(text, ctx)


@FUZZ
@given(GRAMMAR, CONTEXTS)
def test_dose_grammar(text, ctx):
    _check_all(text, ctx)


@FUZZ
@given(GRAMMAR)
def test_dose_grammar_as_a_context_object(text):
    _check_all(text, PatientContext(age=0, weight_kg=0.5, pregnant=True, breastfeeding=True,
                                    allergies=["penicillin", "sulfa", "NSAIDs"], conditions=["CKD", "asthma", "afib"]))


@FUZZ
@given(st.dictionaries(st.sampled_from(["age", "age_years", "weight_kg", "pregnant", "breastfeeding", "allergies",
                                        "conditions", "medications", "bogus"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                                 st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3))))
def test_any_context_dict_is_a_context_or_a_value_error(d):
    try:
        ctx = as_context(d)
    except ValueError:
        return
    assert isinstance(ctx, PatientContext)
    check_dosage("paracetamol 1 g every 4 hours", LEXICON, ctx)


@pytest.mark.parametrize("text", ["", " ", "mg", "0 mg", ".", "1-", "-1 mg paracetamol", "paracetamol\x00500mg"])
def test_tiny_inputs(text):
    _check_all(text, None)
