"""Calibration through the evaluation path: `fit_on` and `evaluate_model` over a `Scorer`
(synthetic ones with known probabilities, and the tiny model), and the `medqa calibrate` /
`medqa evaluate --calibration` commands end to end."""

import json
import math

import numpy as np
import pytest

from medqa.cli import main
from medqa.data.record import MCQRecord
from medqa.evaluation import calibration as cal, metrics
from medqa.evaluation.runner import evaluate_model, fit_on
from medqa.modeling.scoring import make_score

ALPHA = 0.1


def synthetic_records(n, rng, prefix):
    """Records whose true option probabilities are known (Dirichlet per question), labels drawn
    from them: a scorer reporting those probabilities is calibrated by construction."""
    records, truth = [], {}
    for i in range(n):
        p = rng.dirichlet([0.6] * 4)
        answer = int(rng.choice(4, p=p))
        record = MCQRecord(question=f"{prefix} question {i}?", options=[f"{prefix}{i} option {k}" for k in range(4)],
                           answer_index=answer, subject=["Anatomy", "Medicine"][i % 2], id=f"{prefix}{i}")
        records.append(record)
        truth.update({(record.question, text): float(p[k]) for k, text in enumerate(record.options)})
    return records, truth


def scorer_from(truth, power=1.0, position_prior=None):
    """A `Scorer` reporting true probabilities ** power (over-confident when power > 1), optionally
    times a prior on the option's POSITION -- the small-model bias debiasing removes."""
    prior = position_prior or [1.0, 1.0, 1.0, 1.0]

    def score(records):
        out = []
        for r in records:
            logits = [power * math.log(truth[(r.question, t)]) + math.log(prior[k]) for k, t in enumerate(r.options)]
            out.append(make_score(logits, [1] * len(logits), "letter"))
        return out

    return score


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(7)
    (cal_rows, cal_truth), (test_rows, test_truth) = (synthetic_records(2000, rng, prefix) for prefix in "ct")
    return cal_rows, test_rows, cal_truth | test_truth


def test_answer_sets_cover_at_the_target_rate_through_the_evaluation_path(split):
    cal_rows, test_rows, truth = split
    scorer = scorer_from(truth)
    fitted = fit_on(scorer, cal_rows, alpha=ALPHA, min_rows_per_subject=40)
    report, _ = evaluate_model(scorer, test_rows, consistency_n=0, calibrated=fitted)
    spread = 3 * math.sqrt(ALPHA * (1 - ALPHA) * (1 / 2000 + 1 / 2000))
    assert 1 - ALPHA - spread <= report["conformal"]["coverage"] <= 1 - ALPHA + 1 / 2001 + spread
    for subject, row in report["conformal"]["per_subject"].items():
        assert row["n"] == 1000 and abs(row["coverage"] - (1 - ALPHA)) < 0.05, subject
    assert sorted(report["conformal"]["mondrian_subjects"]) == ["Anatomy", "Medicine"]
    # Every prediction row carries its set; coverage is the share of sets holding the answer.
    rows = report["predictions"]
    assert sum(r["answer"] in r["prediction_set"] for r in rows) / len(rows) == report["conformal"]["coverage"]
    assert 1 < report["conformal"]["mean_set_size"] < 4


def test_temperature_scaling_lowers_ece_on_held_out_rows(split):
    cal_rows, test_rows, truth = split
    scorer = scorer_from(truth, power=3.0)  # over-confident: the fitted T should undo the power
    fitted = fit_on(scorer, cal_rows, alpha=ALPHA)
    report, _ = evaluate_model(scorer, test_rows, consistency_n=0, calibrated=fitted)
    assert fitted.temperature == pytest.approx(3.0, rel=0.15)
    assert report["calibration"]["ece_before"] > 0.1
    assert report["calibration"]["ece"] < 0.04 < report["calibration"]["ece_before"]
    # Scaling never changes which option is on top.
    assert all(int(np.argmax(r["calibrated_probabilities"])) == r["predicted"] for r in report["predictions"])


def test_debiased_prediction_is_the_same_whichever_way_the_options_are_listed(split):
    _, test_rows, truth = split
    scorer = scorer_from(truth, position_prior=[6.0, 1.0, 1.0, 1.0])  # loves "A"
    records = test_rows[:200]
    shifted = [metrics.rotate_record(r, 2) for r in records]
    listed, _ = evaluate_model(scorer, records, consistency_n=0, permutations=4)
    moved, _ = evaluate_model(scorer, shifted, consistency_n=0, permutations=4)
    assert listed["prediction_distribution"]["A"] > 0.6  # raw: the position prior wins
    assert listed["debiased"]["accuracy"] == moved["debiased"]["accuracy"]
    assert listed["debiased"]["accuracy"] > listed["debiased"]["accuracy_raw"]
    assert listed["debiased"]["majority"] == metrics.majority_baseline([r.answer_index for r in records])["accuracy"]
    # Per question, the debiased answer's TEXT does not depend on the listing.
    _, a = evaluate_model(scorer, records, consistency_n=0, permutations=4)
    _, b = evaluate_model(scorer, shifted, consistency_n=0, permutations=4)
    for r, s, pa, pb in zip(records, shifted, a.debiased, b.debiased):
        assert r.options[int(np.argmax(pa))] == s.options[int(np.argmax(pb))]


def test_permutation_consistency_is_read_off_the_rotations_without_rescoring(split):
    _, test_rows, truth = split
    calls = []
    base = scorer_from(truth, position_prior=[3.0, 1.0, 1.0, 1.0])

    def counting(records):
        calls.append(len(records))
        return base(records)

    rotated, _ = evaluate_model(counting, test_rows[:50], consistency_n=20, permutations=2)
    assert calls == [100]  # one scorer call: 50 questions x 2 rotations, consistency included
    calls.clear()
    plain, _ = evaluate_model(counting, test_rows[:50], consistency_n=20)
    assert calls == [50, 20]
    assert rotated["permutation_consistency"] == plain["permutation_consistency"]


def test_a_calibration_refuses_scores_made_another_way(split):
    cal_rows, test_rows, truth = split
    fitted = fit_on(scorer_from(truth), cal_rows[:200], permutations=1)
    with pytest.raises(ValueError, match="1 rotation"):
        evaluate_model(scorer_from(truth), test_rows[:10], consistency_n=0, permutations=2, calibrated=fitted)
    with pytest.raises(ValueError, match="'letter'"):
        evaluate_model(scorer_from(truth), test_rows[:10], method="text", consistency_n=0, calibrated=fitted)


# ---------------------------------------------------------------------------
# The commands, with the tiny model
# ---------------------------------------------------------------------------


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, (json.loads(captured.out.strip().splitlines()[-1]) if code == 0 else captured.err)


def test_calibrate_then_evaluate_reports_calibration_and_answer_sets(tmp_path, capsys, medmcqa_file):
    artefact = tmp_path / "cal.json"
    code, summary = run(["calibrate", "--model", "tiny-random", "--data", "sample", "--permutations", "2",
                         "--min-rows-per-subject", "5", "--output", str(artefact)], capsys)
    assert code == 0 and summary["calibration"] == str(artefact) and summary["rows"] > 20
    loaded = cal.Calibration.load(artefact)
    assert (loaded.permutations, loaded.method, loaded.conformal.alpha) == (2, "letter", 0.1)
    assert loaded.temperature == pytest.approx(summary["temperature"])

    out = tmp_path / "eval" / "report.json"
    code, summary = run(["evaluate", "--model", "tiny-random", "--data", str(medmcqa_file), "--permutations", "2",
                         "--calibration", str(artefact), "--output", str(out)], capsys)
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["calibration"]) >= {"temperature", "ece", "ece_before", "reliability"}
    conformal = report["conformal"]
    assert conformal["alpha"] == 0.1 and conformal["n"] == report["n"] == 12
    assert sum(v["n"] for v in conformal["per_subject"].values()) == 12
    assert set(conformal["per_subject"]) == {"Medicine", "Physiology"}
    assert report["debiased"]["permutations"] == 2
    assert summary["conformal"]["coverage"] == conformal["coverage"]
    markdown = out.with_suffix(".md").read_text()
    assert "## Answer sets" in markdown and "answer_sets.png" in markdown and "reliability_calibrated.png" in markdown
    assert (out.parent / "report_plots" / "answer_sets.png").stat().st_size > 5000


def test_evaluate_fits_a_calibration_on_given_rows_and_flags_overlap(tmp_path, capsys, medmcqa_file):
    out = tmp_path / "report.json"
    code, _ = run(["evaluate", "--model", "tiny-random", "--data", str(medmcqa_file), "--calibration-data",
                   str(medmcqa_file), "--conformal-alpha", "0.2", "--no-plots", "--output", str(out)], capsys)
    assert code == 0
    report = json.loads(out.read_text())
    assert report["conformal"]["alpha"] == 0.2
    assert report["calibration"]["overlap_with_evaluated"] == 12  # the same rows: coverage not earned


@pytest.mark.parametrize("extra, message", [
    (["--conformal-alpha", "0.2"], "fitted at alpha 0.1"),
    (["--permutations", "3"], "--permutations 1"),
    (["--calibration-data", "sample"], "not both"),
])
def test_evaluate_refuses_a_calibration_it_cannot_honour(tmp_path, capsys, medmcqa_file, extra, message):
    """Before any model is loaded: the model named here does not exist."""
    artefact = cal.Calibration(temperature=1.0, conformal=cal.Conformal(
        alpha=0.1, threshold=0.7, subject_thresholds={}, subject_rows={}, min_rows_per_subject=40, rows=50))
    artefact.save(tmp_path / "cal.json")
    code, err = run(["evaluate", "--model", "no-such-model", "--data", str(medmcqa_file), "--no-plots",
                     "--calibration", str(tmp_path / "cal.json"), "--output", str(tmp_path / "r.json"), *extra], capsys)
    assert code == 2 and message in err


def test_a_corrupt_calibration_fails_before_any_model_is_loaded(tmp_path, capsys, medmcqa_file):
    (tmp_path / "cal.json").write_text('{"format": 1, "temperature": ')
    code, err = run(["evaluate", "--model", "no-such-model", "--data", str(medmcqa_file),
                     "--calibration", str(tmp_path / "cal.json")], capsys)
    assert code == 2 and "cal.json" in err


def test_skip_and_limit_give_disjoint_rows_of_one_file(medmcqa_file):
    from medqa.evaluation.command import load_eval_records

    first, _ = load_eval_records(str(medmcqa_file), limit=5)
    rest, summary = load_eval_records(str(medmcqa_file), limit=None, skip=5)
    assert [r.id for r in first] + [r.id for r in rest] == [f"q{i}" for i in range(12)]
    assert summary["skip"] == 5 and summary["rejected"] == 2
    with pytest.raises(ValueError, match="no valid rows"):
        load_eval_records(str(medmcqa_file), limit=None, skip=12)
