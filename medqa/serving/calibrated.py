"""Calibrated `/v1/mcq` answers (no Ray, no model): which calibration the served model uses, and
a batch's calibrated probabilities and conformal answer sets.

The calibration is read where the app is built (`build_app`), so a bad file stops the
deployment before any replica starts; it travels to the model replicas as a dict, so the file
need exist only there. Its thresholds hold only for scores made as on its calibration rows, so
a batch is scored with its method over its `permutations` rotations (`medqa.evaluation`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, Sequence

from medqa.config import ConfigError, ServingConfig
from medqa.data.record import MCQRecord
from medqa.evaluation.calibration import Calibration

ADAPTER_FILE = "calibration.json"
"""Where training leaves an adapter's calibration; served when `serving.calibration` is unset."""
OFF = "none"
"""`serving.calibration: none` serves the adapter uncalibrated even when it has a calibration."""


def calibration_path(serving: ServingConfig) -> Optional[Path]:
    """The calibration file to serve: `serving.calibration`, else the adapter's own, else none."""
    if serving.calibration is not None:
        return None if serving.calibration.strip().lower() == OFF else Path(serving.calibration).expanduser()
    if serving.adapter and (Path(serving.adapter) / ADAPTER_FILE).is_file():
        return Path(serving.adapter) / ADAPTER_FILE
    return None


def load_calibration(serving: ServingConfig) -> Optional[Calibration]:
    """The served model's calibration, or None; a file that is missing or not a calibration is
    a `ConfigError` naming it, raised before anything is deployed."""
    path = calibration_path(serving)
    if path is None:
        return None
    return _read(path, "serving.calibration" if serving.calibration is not None else
                 "serving.calibration (the adapter's)")


def adapter_calibrations(serving: ServingConfig) -> dict[str, Calibration]:
    """The calibration of each `serving.adapters` entry that has one (its `calibration.json`):
    an adapter's answers are calibrated with its own, never with the base model's."""
    found = {name: Path(path) / ADAPTER_FILE for name, path in serving.adapters.items()}
    return {name: _read(path, f"serving.adapters.{name}") for name, path in found.items() if path.is_file()}


def _read(path: Path, key: str) -> Calibration:
    from medqa.modeling.scoring import METHODS

    if not path.is_file():
        raise ConfigError(f"{key}: {path} is not a file (write one with `medqa calibrate ... --output FILE`)")
    try:
        cal = Calibration.load(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{key}: {err}") from None
    if cal.method not in METHODS:
        raise ConfigError(f"{key}: {path}: scoring method {cal.method!r} is not one of {list(METHODS)}")
    return cal


def describe(cal: Optional[Calibration]) -> Optional[dict]:
    """What `/health` says of the served calibration."""
    if cal is None:
        return None
    return {"temperature": cal.temperature, "set_coverage": set_coverage(cal), "permutations": cal.permutations,
            "method": cal.method, "source": cal.data.source}


def set_coverage(cal: Calibration) -> float:
    return round(1.0 - cal.conformal.alpha, 12)  # 0.9, not 0.9000000000000000222


Scorer = Callable[[Sequence[MCQRecord]], list]


def calibrated_scores(cal: Calibration, records: Sequence[MCQRecord], subjects: Sequence[Optional[str]],
                      scorer: Scorer) -> list[dict]:
    """Per record: calibrated `probabilities`, the `prediction_set` (option indices, never empty)
    and its `set_coverage`. Every record's rotations go through ONE `scorer` call (one batch);
    a subject the calibration has no threshold of (or None) gets the pooled threshold."""
    from medqa.evaluation.runner import score_rotated

    rotated = score_rotated(scorer, records, cal.permutations)
    probs, sets = cal.answer_sets(rotated.debiased, list(subjects))
    coverage = set_coverage(cal)
    return [{"probabilities": p, "prediction_set": s, "set_coverage": coverage} for p, s in zip(probs, sets)]
