"""Dosage extraction and limit checks."""

import math
import re

import pytest

from medqa.safety.context import PatientContext
from medqa.safety.dosage import check_dosage, estimated_weight, extract_doses, parse_frequency
from medqa.safety.interactions import default_checker


@pytest.fixture(scope="module")
def lexicon():
    return default_checker().lexicon


@pytest.mark.parametrize("text, needle", [
    ("Take paracetamol 1500 mg every 4 hours", "single dose of 1000 mg"),
    ("I take 2 tablets of 500mg Tylenol every 4 hours", "6000 mg a day"),        # brand + tablet count
    ("Acetaminophen 1 g six times a day", "6000 mg a day"),
    ("Methotrexate 10 mg daily for rheumatoid arthritis", "ONCE A WEEK"),
    ("methotrexate 7.5 mg three times a week", "ONCE A WEEK"),
    ("Levothyroxine 100 mg once daily", "micrograms"),                       # mg/mcg confusion
    ("Give my 2-year-old 500 mg of paracetamol", "adult dose"),
    ("Codeine 15 mg for my 6 year old's cough", "under 12"),
    ("aspirin 300 mg for my 10 year old", "Reye"),
    ("Colchicine 1 mg every hour until the pain stops", "1.8 mg a day"),
    ("Ibuprofen 800 mg five times a day", "4000 mg a day"),
    ("Paracetamol 6 g a day", "6000 mg a day"),
])
def test_flags(lexicon, text, needle):
    flagged = check_dosage(text, lexicon)
    assert flagged, extract_doses(text, lexicon)
    assert any(needle in w for d in flagged for w in d["warnings"]), flagged


@pytest.mark.parametrize("text", [
    "Take paracetamol 1000 mg four times a day",
    "Methotrexate 15 mg once weekly with folic acid",
    "Levothyroxine 100 mcg once daily",
    "Give my 2-year-old 180 mg of paracetamol every 6 hours",
    "My 8 year old weighs 25 kg, can he take 250 mg ibuprofen?",
    "Ibuprofen 400mg three times a day with food",
    "Paracetamol 4 g a day is the maximum for adults",
    "The paediatric dose of paracetamol is 15 mg/kg",
    "Tylenol 500 mg, two tablets every 6 hours",
    "Amoxicillin 500 mg three times a day for 5 days",
])
def test_safe_doses_pass(lexicon, text):
    assert check_dosage(text, lexicon) == []


def test_extraction_fields(lexicon):
    [dose] = extract_doses("My 4 year old (16 kg) was given 2 x 120 mg Calpol every 6 hours", lexicon)
    assert (dose.drug, dose.amount, dose.unit, dose.count) == ("paracetamol", 120.0, "mg", 2)
    assert (dose.per_day, dose.age_years, dose.weight_kg) == (4, 4.0, 16.0)
    assert dose.single_mg == 240 and dose.daily_mg == 960


def test_patient_context_age(lexicon):
    assert check_dosage("Ibuprofen 400 mg", lexicon, {"age": 1.5})
    assert not check_dosage("Ibuprofen 400 mg", lexicon, {"age": 30})


@pytest.mark.parametrize("words, per_day, kind", [
    ("twice a day", 2, "times"), ("tds", 3, "times"), ("every 6 hours", 4, "hours"),
    ("once weekly", 1 / 7, "weekly"), ("a day", 1, "total"), ("q4h", 6, "hours"), ("as needed", None, None),
])
def test_frequency(words, per_day, kind):
    assert parse_frequency(words) == (per_day, kind)


def test_weight_for_age():
    assert estimated_weight(0.5) == 7
    assert estimated_weight(2) == 12
    assert estimated_weight(8) == 31


# ---- patient context ---------------------------------------------------------

@pytest.mark.parametrize("text, ctx, flagged", [
    ("Ibuprofen 400 mg", PatientContext(age=1.5), True),                # age alone: weight estimated
    ("Ibuprofen 400 mg", PatientContext(age=30), False),
    ("Paracetamol 500 mg every 6 hours", PatientContext(weight_kg=12), True),    # weight alone
    ("Paracetamol 500 mg every 6 hours", PatientContext(weight_kg=70), False),
    ("Paracetamol 180 mg every 6 hours", PatientContext(age=2, weight_kg=12), False),
    ("Paracetamol 500 mg for my 30 year old", PatientContext(age=3), True),      # the context wins over the text
    ("Codeine 15 mg for the cough", {"age": 6}, True),
    ("Aspirin 300 mg", {"age": 0}, True),                                   # a newborn: age 0 is an age
    ("I lost 10 kg; can I take paracetamol 1 g four times a day?", None, False),  # a text weight needs an age
])
def test_context_age_and_weight(lexicon, text, ctx, flagged):
    assert bool(check_dosage(text, lexicon, ctx)) is flagged


def test_context_weight_is_used(lexicon):
    [dose] = extract_doses("Paracetamol 120 mg", lexicon, PatientContext(age=4, weight_kg=20))
    assert (dose.age_years, dose.weight_kg) == (4, 20)
    [flag] = check_dosage("Paracetamol 500 mg", lexicon, PatientContext(weight_kg=12))
    assert "12 kg patient" in flag["warnings"][0]


def test_invalid_context_is_a_clear_error(lexicon):
    with pytest.raises(ValueError, match="unknown patient_context key"):
        check_dosage("Paracetamol 1 g", lexicon, {"age_yrs": 4})


# ---- ranges and stated daily maxima -----------------------------------------

@pytest.mark.parametrize("text", [
    "Take 1-2 tablets of 500 mg paracetamol every 4-6 hours, no more than 8 tablets (4 g) in 24 hours",
    "Paracetamol 500 mg to 1 g every 4 to 6 hours, maximum 4 g a day",
    "ibuprofen 200-400 mg every 4-6 hours, do not exceed 1200 mg in 24 hours",
    "Take 2 tablets of 500 mg paracetamol every 4 hours, not more than 8 tablets in 24 hours",
    "Paracetamol 500mg-1g every 4 hours (max 4 g/day)",
    "Paracetamol 1 g every 4 hours. Maximum 4 g a day.",
    "Ibuprofen 400 mg every 4 hours, up to 1200 mg per day",
    "Naproxen 250-500 mg every 6 hours, max 1000 mg daily",
    "The maximum daily dose of paracetamol is 4 g",
    "Take 1,000 mg of paracetamol every 6 hours",
])
def test_range_with_daily_cap_passes(lexicon, text):
    assert check_dosage(text, lexicon) == [], extract_doses(text, lexicon)


@pytest.mark.parametrize("text, needle", [
    ("Paracetamol 1 g every 4 hours, up to 6 g a day", "paracetamol: the stated maximum of 6000 mg a day"),
    ("Take 1-2 tablets of 500 mg paracetamol every 4 hours, no more than 12 tablets in 24 hours", "6000 mg a day"),
    ("Ibuprofen 400 mg every 4 hours, do not exceed 4000 mg in 24 hours", "4000 mg a day exceeds"),
    ("Paracetamol 500 mg to 1.5 g every 6 hours, maximum 4 g a day", "1500 mg per dose"),  # top of the range
    ("Paracetamol 1 g every 4 hours", "6000 mg a day"),                                     # no cap: worst case
])
def test_cap_above_limit_or_dose_above_single_limit(lexicon, text, needle):
    warnings = [w for d in check_dosage(text, lexicon) for w in d["warnings"]]
    assert any(needle in w for w in warnings), warnings


def test_cap_is_used_for_the_daily_check(lexicon):
    doses = extract_doses("Paracetamol 500 mg to 1 g every 4 to 6 hours, maximum 4 g a day", lexicon)
    assert [(d.role, d.single_mg, d.daily_mg) for d in doses] == [("dose", 1000, 4000), ("cap", 4000, 4000)]


# ---- single doses that add up ------------------------------------------------

@pytest.mark.parametrize("text, needle", [
    ("Take 1 g of paracetamol in the morning. Take another 1 g at lunch, 1 g in the afternoon, "
     "1 g in the evening and 1 g at bedtime.", "add up to 5000 mg"),
    ("I took 2 Tylenol Extra Strength at 8am, 2 more at noon, 2 at 4pm, 2 at 8pm and 2 at midnight",
     "add up to 5000 mg"),
    ("ibuprofen 800 mg at breakfast, 800 mg at lunch, 800 mg at dinner and 800 mg before bed and another 800 mg at 3am",
     "add up to 4000 mg"),
    ("I gave my 2 year old 240 mg of Calpol at 8, 240 mg at 12, 240 mg at 4, 240 mg at 8 and 240 mg at midnight",
     "mg/kg a day"),
])
def test_doses_adding_up_are_flagged(lexicon, text, needle):
    flagged = check_dosage(text, lexicon)
    sums = [d for d in flagged if d["role"] == "sum"]
    assert sums and any(needle in w for d in sums for w in d["warnings"]), flagged


@pytest.mark.parametrize("text", [
    "Paracetamol 500 mg or 1 g",
    "You can take 500 mg of paracetamol, or 1 g if the pain is severe",
    "Paracetamol 250 mg, 500 mg or 1 g depending on weight",
    "Paracetamol 500 mg every 4 hours or 1 g every 6 hours",
    "Ibuprofen comes in 200 mg, 400 mg, 600 mg and 800 mg tablets",
    "Take 1 g of paracetamol. If the pain persists, take another 1 g after 4 hours.",
    "Do not take more than 1 g of paracetamol at once, and no more than 4 g a day.",
    "Yesterday I took 1 g of paracetamol at 8 and 1 g at noon and 1 g at 6. Today another 1 g at 8 and 1 g at noon.",
    "I took 2 Tylenol at 8am, 2 more at noon, 2 at 4pm, 2 at 8pm and 2 at midnight",  # strength unknown: skipped
    "I bought a pack of 16 Panadol",
    "I take warfarin 5 mg daily. I also take 500 mg of vitamin C",
    "Metformin 1 g every morning and 1 g every night",
])
def test_alternatives_and_non_administrations_pass(lexicon, text):
    assert check_dosage(text, lexicon) == [], extract_doses(text, lexicon)


def test_sum_names_its_parts(lexicon):
    text = "Ibuprofen 800 mg at 8am, then 800 mg at noon, 800 mg at 4pm, 600 mg at 8pm and 400 mg at midnight"
    [flag] = check_dosage(text, lexicon)
    assert flag["role"] == "sum" and flag["daily_mg"] == 3400
    assert "800 mg + 800 mg + 800 mg + 600 mg + 400 mg" in flag["warnings"][0]


def test_product_units_are_counted(lexicon):
    [dose] = extract_doses("I take 2 Advil every 4 hours", lexicon)
    assert (dose.drug, dose.single_mg, dose.daily_mg) == ("ibuprofen", 400, 2400)
    assert check_dosage("I took 10 Panadol", lexicon)


# ---- attribution and number parsing -----------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Take 1,000 mg of paracetamol", [("paracetamol", 1000)]),
    ("Take .5 g of paracetamol", [("paracetamol", 500)]),
    ("Take 1e308 mg of paracetamol", []),  # not 308 mg
    ("Ciprofloxacin 500 mg oral single dose Azithromycin 2 g oral single dose", [("ciprofloxacin", 500)]),
    ("Take ibuprofen 400 mg, then 1 g of paracetamol", [("ibuprofen", 400), ("paracetamol", 1000)]),
])
def test_attribution(lexicon, text, expected):
    assert [(d.drug, d.single_mg) for d in extract_doses(text, lexicon)] == expected


@pytest.mark.parametrize("words, per_day, kind", [
    ("every 0 hours", None, None), ("q0h", None, None), ("every 0-4 hours", None, None),
    ("every 0 hours, twice a day", 2, "times"), ("99999999999999999999 times a day", 1440, "times"),
])
def test_degenerate_frequency(words, per_day, kind):
    assert parse_frequency(words) == (per_day, kind)


EDGE_TEXTS = [
    "Paracetamol 0 mg every 0 hours", "Paracetamol -500 mg every -4 hours", "paracetamol 1e308 mg",
    "Take 99999999999999999999 mg of paracetamol every 1 hours", "paracetamol " + "9" * 400 + " mg every 1 hours",
    "paracetamol nan mg inf times a day", "paracetamol 1e999 g", "ibuprofen 400 mg every 0 hours for my 0 year old",
    "My 0 kg baby had 120 mg of paracetamol", "Give my 999999 year old 1 g of paracetamol",
    "ibuprofen 400 mg " * 500, "Paracetamol ٥٠٠ mg", "İİİ paracetamol 500 mg ﬁ ß 𝟓𝟎𝟎 mg", "\x00\ufeff\u202e mg g mcg",
    "99999999999999999999 x 99999999999999999999 mg paracetamol 99999999999999999999 times a day",
    "no more than 99999999999999999999 tablets of paracetamol in 24 hours", "1" * 10000 + " mg paracetamol",
]


@pytest.mark.parametrize("text", EDGE_TEXTS)
def test_never_crashes_and_reports_finite_numbers(lexicon, text):
    for ctx in (None, PatientContext(age=0), PatientContext(weight_kg=0.1)):
        extract_doses(text, lexicon, ctx)
        for flag in check_dosage(text, lexicon, ctx):
            numbers = [v for v in flag.values() if isinstance(v, float)]
            assert all(math.isfinite(v) for v in numbers), flag
            assert not any(re.search(r"\b(?:inf|nan)\b", w) for w in flag["warnings"]), flag
