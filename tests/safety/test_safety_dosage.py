"""Dosage extraction and limit checks."""

import pytest

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
    assert check_dosage("Ibuprofen 400 mg", lexicon, {"age_years": 1.5})
    assert not check_dosage("Ibuprofen 400 mg", lexicon, {"age_years": 30})


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
