"""Calibrated answers without a model: synthetic scorers whose true probabilities are known."""

import json
import math
from fractions import Fraction

import numpy as np
import pytest

from medqa.data.record import MCQRecord
from medqa.evaluation import calibration as cal, metrics
from medqa.modeling.scoring import make_score

ALPHA = 0.1
# name: (Dirichlet concentration -- small is an easy, confident subject --, share of rows)
SUBJECTS = {"Anatomy": (0.25, 0.35), "Medicine": (1.0, 0.30), "Pharmacology": (4.0, 0.25), "Dental": (0.5, 0.10)}


def synthetic(n, rng, sharpen=None, k=4):
    """(reported probs, labels, subjects): true probabilities from a Dirichlet per subject and
    labels drawn FROM them, so the true probabilities are calibrated by construction. `sharpen`
    {subject: power} makes the reported probabilities over-confident (true ** power, renormalised)."""
    names = list(SUBJECTS)
    shares = np.array([SUBJECTS[s][1] for s in names])
    subjects = rng.choice(names, size=n, p=shares / shares.sum())
    concentration = np.array([SUBJECTS[s][0] for s in subjects])[:, None]
    true = rng.gamma(concentration, size=(n, k))
    true /= true.sum(axis=1, keepdims=True)
    labels = np.minimum((rng.random(n)[:, None] > true.cumsum(axis=1)).sum(axis=1), k - 1)
    power = np.array([(sharpen or {}).get(s, 1.0) for s in subjects])[:, None]
    reported = true**power
    reported /= reported.sum(axis=1, keepdims=True)
    return reported.tolist(), labels.tolist(), subjects.tolist()


def coverage_bounds(n_cal, n_test, alpha=ALPHA):
    """Three standard errors of a split-conformal coverage estimate: the calibration draw moves the
    conditional coverage by about sqrt(a(1-a)/n_cal), the test draw adds sqrt(a(1-a)/n_test).
    Above, the expected coverage is at most 1 - a + 1/(n_cal + 1) for continuous scores."""
    spread = 3 * math.sqrt(alpha * (1 - alpha) * (1 / n_cal + 1 / n_test))
    return 1 - alpha - spread, 1 - alpha + 1 / (n_cal + 1) + spread


def split_report(seed, min_rows, sharpen=None):
    rng = np.random.default_rng(seed)
    (p_cal, y_cal, s_cal), (p_test, y_test, s_test) = synthetic(3000, rng, sharpen), synthetic(3000, rng, sharpen)
    conformal = cal.fit_conformal(p_cal, y_cal, s_cal, ALPHA, min_rows_per_subject=min_rows)
    report = cal.set_report(cal.prediction_sets(p_test, s_test, conformal), y_test, s_test, ALPHA)
    return conformal, report


# ---------------------------------------------------------------------------
# (1) coverage on a calibrated synthetic scorer
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pooled_sets_cover_at_the_target_rate(seed):
    conformal, report = split_report(seed, min_rows=10**9)
    assert conformal.subject_thresholds == {}
    low, high = coverage_bounds(3000, 3000)
    assert low <= report["coverage"] <= high
    assert 1 < report["mean_set_size"] < 4  # informative: neither single answers nor every option


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mondrian_sets_cover_each_subject(seed):
    conformal, report = split_report(seed, min_rows=40)
    assert set(conformal.subject_thresholds) == set(SUBJECTS)
    assert coverage_bounds(3000, 3000)[0] <= report["coverage"]
    for subject, row in report["per_subject"].items():
        low, high = coverage_bounds(conformal.subject_rows[subject], row["n"])
        assert low <= row["coverage"] <= high, subject


def test_mondrian_repairs_a_subject_the_model_is_overconfident_on():
    # Pharmacology's reported probabilities are true ** 4: pooled thresholds under-cover it badly.
    _, pooled = split_report(0, min_rows=10**9, sharpen={"Pharmacology": 4.0})
    conformal, mondrian = split_report(0, min_rows=40, sharpen={"Pharmacology": 4.0})
    n_cal, row = conformal.subject_rows["Pharmacology"], mondrian["per_subject"]["Pharmacology"]
    low, high = coverage_bounds(n_cal, row["n"])
    assert pooled["per_subject"]["Pharmacology"]["coverage"] < low - 0.05
    assert low <= row["coverage"] <= high


# ---------------------------------------------------------------------------
# (2) thresholds against an independent computation
# ---------------------------------------------------------------------------


def reference_threshold(scores, alpha):
    """crepes' convention (non-smoothed p = (#{s_i >= a} + 1) / (n + 1), admitted when p >= alpha):
    the (floor((n + 1)(1 - alpha)) + 1)-th smallest score. That is the textbook
    ceil((n + 1)(1 - alpha))-th unless (n + 1) * alpha is a whole number, where it is one rank
    higher (the tie p == alpha is admitted). Past the n-th score every option is admitted (1.0)."""
    n = len(scores)
    k = math.floor((n + 1) * (1 - Fraction(str(alpha)))) + 1
    return 1.0 if k > n else float(np.sort(scores)[k - 1])


CASES = [  # (rows, alpha, why)
    (3000, 0.1, "(n+1)(1-a) = 2700.9, not whole"),
    (99, 0.1, "(n+1)a = 10: the tie rank"),
    (9, 0.3, "(n+1)a = 3, and 1 - (1 - 0.3) != 0.3 in floating point"),
    (39, 0.05, "(n+1)a = 2"),
    (8, 0.1, "too few rows: every option admitted"),
    (500, 0.2, "(n+1)(1-a) = 400.8"),
]


@pytest.mark.parametrize("n, alpha, why", CASES, ids=[c[2] for c in CASES])
def test_thresholds_equal_the_order_statistic(n, alpha, why):
    rng = np.random.default_rng(n)
    probs = rng.dirichlet([0.7] * 4, size=n)
    labels = rng.integers(0, 4, size=n)
    conformal = cal.fit_conformal(probs.tolist(), labels.tolist(), ["one"] * n, alpha, min_rows_per_subject=1)
    expected = reference_threshold(1.0 - probs[np.arange(n), labels], alpha)
    assert conformal.threshold == expected
    assert conformal.subject_thresholds == {"one": expected}


def test_mondrian_thresholds_equal_the_order_statistic_per_subject_with_ties():
    rng = np.random.default_rng(7)
    subjects = ["a"] * 120 + ["b"] * 59 + ["c"] * 300
    probs = np.round(rng.dirichlet([1.0] * 4, size=len(subjects)), 1)  # coarse: many tied scores
    probs[:, 0] += 1 - probs.sum(axis=1)
    labels = rng.integers(0, 4, size=len(subjects))
    conformal = cal.fit_conformal(probs.tolist(), labels.tolist(), subjects, ALPHA, min_rows_per_subject=1)
    scores, bins = 1.0 - probs[np.arange(len(labels)), labels], np.array(subjects)
    assert conformal.threshold == reference_threshold(scores, ALPHA)
    assert conformal.subject_thresholds == {s: reference_threshold(scores[bins == s], ALPHA) for s in "abc"}


def test_sets_are_the_ones_crepes_predicts():
    from crepes import ConformalClassifier

    rng = np.random.default_rng(3)
    (p_cal, y_cal, s_cal), (p_test, _, s_test) = synthetic(1500, rng), synthetic(1500, rng)
    conformal = cal.fit_conformal(p_cal, y_cal, s_cal, ALPHA, min_rows_per_subject=1)
    scores = 1.0 - np.array(p_cal)[np.arange(len(y_cal)), y_cal]
    library = ConformalClassifier().fit(scores, bins=np.array(s_cal))
    admitted = library.predict_set(1.0 - np.array(p_test), bins=np.array(s_test), confidence=1 - ALPHA,
                                   smoothing=False)
    expected = [np.flatnonzero(row).tolist() or [int(np.argmax(p))] for row, p in zip(admitted, p_test)]
    assert cal.prediction_sets(p_test, s_test, conformal) == expected


# ---------------------------------------------------------------------------
# (3) temperature scaling
# ---------------------------------------------------------------------------


def overconfident_logits(n=4000, seed=0):
    """True logits (4 or 5 options per question) with labels drawn from them, reported x 3."""
    rng = np.random.default_rng(seed)
    logits = [rng.normal(0, 1.5, size=4 + (i % 2)) for i in range(n)]
    labels = [int(rng.choice(len(z), p=np.exp(z) / np.exp(z).sum())) for z in logits]
    return [(3 * z).tolist() for z in logits], labels


def test_temperature_recovers_the_overconfidence_factor_and_lowers_ece():
    scores, labels = overconfident_logits()
    temperature = cal.fit_temperature(scores, labels)
    assert temperature == pytest.approx(3.0, rel=0.06)
    before = cal.calibration_error(cal.scaled_probs(scores, 1.0), labels)
    after = cal.calibration_error(cal.scaled_probs(scores, temperature), labels)
    assert before > 0.1 and after < 0.03


def test_scaled_probs_at_unit_temperature_are_the_scorers_probabilities():
    rows = [[-1.2, -0.3, -2.5, -0.9], [-4.0, -1.0, -1.5, -0.2, -3.0]]
    expected = [make_score(r, [2] * len(r), "letter").probabilities for r in rows]
    for got, want in zip(cal.scaled_probs(rows, 1.0), expected):
        assert got == pytest.approx(want, abs=1e-12)
    assert [len(p) for p in cal.scaled_probs(rows, 2.0)] == [4, 5]  # no padding leaks out


def test_labels_outside_a_rows_options_are_refused():
    with pytest.raises(ValueError, match="not one of its 4 options"):
        cal.fit_temperature([[0.0, 1.0, 2.0, 3.0], [0.0] * 5], [4, 1])


# ---------------------------------------------------------------------------
# (4) position debiasing
# ---------------------------------------------------------------------------

POSITION_PRIOR = [3.0, 0.0, 0.5, 0.0, 0.2]  # strongly prefers "A", whatever it says
CONTENT = {"aspirin": 1.0, "heparin": 0.4, "warfarin": 0.0, "clopidogrel": -0.3, "alteplase": 0.1}


def biased_scorer(record):
    """Scores = position prior + a weaker content signal; probabilities as `make_score` gives them."""
    scores = [POSITION_PRIOR[j] + CONTENT[t] for j, t in enumerate(record.options)]
    return make_score(scores, [1] * len(scores), "letter").probabilities


def debiased(record):
    rotated = cal.rotations(record, len(record.options))
    return cal.debiased_probs([biased_scorer(r) for r in rotated], [r.options for r in rotated])


@pytest.mark.parametrize("n_options", [4, 5])
def test_debiased_prediction_does_not_depend_on_where_options_are_listed(n_options):
    base = MCQRecord(question="Which drug?", options=list(CONTENT)[:n_options], answer_index=0)
    listings = [metrics.rotate_record(base, shift) for shift in range(n_options)]
    raw = {r.options[int(np.argmax(biased_scorer(r)))] for r in listings}
    assert len(raw) == n_options  # the raw answer is always whatever is listed first
    by_text = [dict(zip(r.options, debiased(r))) for r in listings]
    assert {max(d, key=d.get) for d in by_text} == {"aspirin"}
    for d in by_text[1:]:
        assert d == pytest.approx(by_text[0], abs=1e-12)


def test_debiased_probs_are_averaged_by_text():
    probs = cal.debiased_probs([[0.5, 0.3, 0.2], [0.6, 0.3, 0.1]], [["a", "b", "c"], ["c", "a", "b"]])
    assert probs == pytest.approx([0.4, 0.2, 0.4])


def test_debiasing_refuses_options_that_are_not_a_reordering():
    with pytest.raises(ValueError, match="not a reordering"):
        cal.debiased_probs([[0.5, 0.5], [0.5, 0.5]], [["a", "b"], ["a", "c"]])


def test_rotations_follow_rotate_record_and_stop_at_the_number_of_options():
    record = MCQRecord(question="q", options=["w", "x", "y", "z"], answer_index=1)
    rotated = cal.rotations(record, 9)
    assert [r.options for r in rotated] == [metrics.rotate_record(record, s).options for s in range(4)]
    assert [r.answer_text for r in rotated] == ["x"] * 4
    with pytest.raises(ValueError):
        cal.rotations(record, 0)


# ---------------------------------------------------------------------------
# (5) the artefact
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(11)
    probs, labels, subjects = synthetic(800, rng)
    scores = (3 * np.log(np.clip(probs, 1e-12, None))).tolist()
    return cal.fit_calibration(scores, labels, subjects, ALPHA, source="synthetic.jsonl")


def test_calibration_round_trips_through_json(tmp_path, fitted):
    path = fitted.save(tmp_path / "nested" / "calibration.json")
    assert json.loads(path.read_text())["format"] == 1
    assert cal.Calibration.load(path) == fitted
    assert fitted.temperature == pytest.approx(3.0, rel=0.15)
    assert fitted.data.rows == 800 and fitted.data.ece_after < fitted.data.ece_before


def _edit(data, key, value):
    data = json.loads(json.dumps(data))
    target = data
    *parents, last = key.split(".")
    for part in parents:
        target = target[part]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return json.dumps(data)


BROKEN = [  # (why, file text from the fitted artefact's dict, message)
    ("not JSON", lambda d: '{"format": 1, "temp', "Expecting|Unterminated"),
    ("a list", lambda d: "[1, 2]", "expected \"format\": 1, found 'list'"),
    ("another format", lambda d: _edit(d, "format", 2), "found 2"),
    ("no format", lambda d: _edit(d, "format", KeyError), "found None"),
    ("missing conformal", lambda d: _edit(d, "conformal", KeyError), "missing key 'conformal'"),
    ("missing alpha", lambda d: _edit(d, "conformal.alpha", KeyError), "missing key 'alpha'"),
    ("threshold not a number", lambda d: _edit(d, "conformal.threshold", "high"), "could not convert"),
    ("threshold out of range", lambda d: _edit(d, "conformal.threshold", 1.5), r"not in \[0, 1\]"),
    ("negative temperature", lambda d: _edit(d, "temperature", -1.0), "temperature must be positive"),
    ("unknown score", lambda d: _edit(d, "conformal.score", "aps"), "unknown nonconformity score"),
    ("stray data key", lambda d: _edit(d, "data.extra", 1), "unexpected keyword"),
]


@pytest.mark.parametrize("why, text, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_a_wrong_or_corrupt_file_is_a_clear_value_error(tmp_path, fitted, why, text, message):
    path = tmp_path / "calibration.json"
    path.write_text(text(fitted.to_dict()))
    with pytest.raises(ValueError, match=message) as caught:
        cal.Calibration.load(path)
    assert str(path) in str(caught.value)


# ---------------------------------------------------------------------------
# (6) sets never empty; small subjects use the pooled threshold
# ---------------------------------------------------------------------------


def test_sets_are_never_empty():
    rng = np.random.default_rng(5)
    probs, labels, subjects = synthetic(600, rng)
    conformal = cal.fit_conformal(probs, labels, subjects, alpha=0.8)  # a strict threshold
    sets = cal.prediction_sets(probs, subjects, conformal)
    would_be_empty = [i for i, p in enumerate(probs) if 1 - max(p) > conformal.threshold_for(subjects[i])]
    assert would_be_empty  # the case is exercised
    assert all(sets)
    assert all(sets[i] == [int(np.argmax(probs[i]))] for i in would_be_empty)


def test_subjects_below_the_minimum_use_the_pooled_threshold():
    rng = np.random.default_rng(6)
    probs, labels, subjects = synthetic(1000, rng)
    subjects = ["Rare"] * 10 + subjects[10:]
    conformal = cal.fit_conformal(probs, labels, subjects, ALPHA, min_rows_per_subject=40)
    assert "Rare" not in conformal.subject_thresholds and conformal.subject_rows["Rare"] == 10
    assert conformal.threshold_for("Rare") == conformal.threshold_for("Never seen") == conformal.threshold
    pooled_only = cal.fit_conformal(probs, labels, subjects, ALPHA, min_rows_per_subject=10**9)
    assert pooled_only.threshold == conformal.threshold
    assert cal.prediction_sets(probs[:10], subjects[:10], conformal) == cal.prediction_sets(
        probs[:10], subjects[:10], pooled_only)


def test_set_report_by_hand():
    report = cal.set_report([[0], [0, 1], [2]], [0, 1, 0], ["a", "a", "b"], alpha=0.1)
    assert report == {
        "alpha": 0.1, "n": 3, "coverage": pytest.approx(2 / 3), "mean_set_size": pytest.approx(4 / 3),
        "per_subject": {"a": {"n": 2, "coverage": 1.0, "mean_set_size": 1.5},
                        "b": {"n": 1, "coverage": 0.0, "mean_set_size": 1.0}},
    }
