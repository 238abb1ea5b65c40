"""Calibrated `/v1/mcq` answers without Ray: which calibration is served, and a batch's calibrated
probabilities and answer sets (a fake scorer). The real app serving them: test_operator_app.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medqa.config import ConfigError, ServingConfig
from medqa.data.record import MCQRecord
from medqa.serving.calibrated import calibrated_scores, calibration_path, load_calibration
from serving_helpers import OPTIONS, calibrated, make_calibration


def softmax(x) -> np.ndarray:
    e = np.exp(np.asarray(x, dtype=float) - np.max(x))
    return e / e.sum()


# ---------------------------------------------------------------- which calibration


def test_the_calibration_comes_from_the_config_else_the_adapter_else_none(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    assert calibration_path(ServingConfig(adapter=str(adapter))) is None
    make_calibration().save(adapter / "calibration.json")
    assert calibration_path(ServingConfig(adapter=str(adapter))) == adapter / "calibration.json"
    own = make_calibration(temperature=3.0).save(tmp_path / "own.json")
    assert load_calibration(ServingConfig(adapter=str(adapter), calibration=str(own))).temperature == 3.0
    assert load_calibration(ServingConfig(adapter=str(adapter))).temperature == 2.0
    assert load_calibration(ServingConfig(adapter=str(adapter), calibration="none")) is None
    assert load_calibration(ServingConfig()) is None
    with pytest.raises(ConfigError, match="calibration"):
        ServingConfig(calibration=" ")


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "is not a file"),
        ("{not json", "not a medqa calibration|Expecting"),
        (json.dumps({"format": 99}), "expected \"format\": 1"),
        (json.dumps({"format": 1, "temperature": 1.0}), "missing key"),
        (json.dumps({**make_calibration().to_dict(), "temperature": -1}), "temperature must be positive"),
        (json.dumps({**make_calibration().to_dict(), "method": "vibes"}), "scoring method 'vibes'"),
    ],
)
def test_a_bad_calibration_file_is_a_config_error_naming_it(tmp_path, content, message):
    path = tmp_path / "calibration.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as err:
        load_calibration(ServingConfig(calibration=str(path)))
    assert str(err.value).startswith("serving.calibration") and str(path) in str(err.value)


def test_a_bad_calibration_stops_the_build_and_medqa_serve_before_ray_starts(tmp_path, capsys):
    from medqa.cli import main
    from medqa.serving.app import build_app

    missing = tmp_path / "missing.json"
    with pytest.raises(ConfigError, match="serving.calibration"):
        build_app({"model": "tiny-random", "calibration": str(missing)})
    assert main(["serve", "model=tiny-random", f"calibration={missing}"]) == 2
    assert "serving.calibration" in capsys.readouterr().err


# ---------------------------------------------------------------- a batch, calibrated


def fake_scorer(calls: list):
    """Log-likelihoods from the option text with a bias for the first position (so rotations matter)."""
    from medqa.modeling.scoring import make_score

    def score(records):
        calls.append(len(records))
        return [make_score([-0.3 * len(o) + (1.5 if i == 0 else 0.0) for i, o in enumerate(r.options)],
                           [len(o) + 1 for o in r.options], "letter") for r in records]

    return score


@pytest.mark.parametrize("permutations", [1, 2, 4])
def test_a_batch_is_scored_once_over_its_rotations_and_regrouped(permutations):
    cal = make_calibration(temperature=1.7, threshold=0.7, subjects={"Anatomy": 0.0}, permutations=permutations)
    records = [MCQRecord(question=f"q{i}", options=OPTIONS[i:] + OPTIONS[:i]) for i in range(3)]
    subjects = [None, "Anatomy", "Surgery"]
    calls: list = []
    out = calibrated_scores(cal, records, subjects, fake_scorer(calls))
    assert calls == [3 * permutations]  # one scorer call for the whole batch
    for record, subject, result in zip(records, subjects, out):
        shifted = [record.options[-k:] + record.options[:-k] if k else record.options for k in range(permutations)]
        probs = [softmax([-0.3 * len(o) + (1.5 if i == 0 else 0.0) for i, o in enumerate(opts)]) for opts in shifted]
        expected = calibrated(probs, shifted, cal.temperature)
        assert result["probabilities"] == pytest.approx(expected.tolist(), abs=1e-9)
        threshold = 0.0 if subject == "Anatomy" else 0.7
        members = [i for i, p in enumerate(expected) if 1 - p <= threshold] or [int(expected.argmax())]
        assert result["prediction_set"] == members and result["set_coverage"] == 0.9
