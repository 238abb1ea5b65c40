"""The `medqa calibrate` command's core: score a labelled calibration split the way questions
will be scored (method, K rotations), fit temperature and conformal thresholds on it
(`calibration.fit_calibration`) and write the JSON artefact that `medqa evaluate --calibration`
and the server read. The CLI, training and the tests call `run_calibration`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from medqa.console import err
from medqa.evaluation.command import EvaluateSettings, load_eval_records, scorer_for

ARTEFACT_NAME = "calibration.json"
"""Beside an adapter, the server picks it up (`serving.calibration` overrides)."""
DEFAULT_OUTPUT_DIR = "runs/calibration"


@dataclass(frozen=True)
class CalibrateSettings:
    """One calibration (the `medqa calibrate` flags; their help is in `evaluation/cli.py`)."""

    data: str
    model: Optional[str] = None  # default: the adapter's base model, else smollm2-135m
    adapter: Optional[str] = None
    output: Optional[str] = None  # default: <adapter>/calibration.json, else DEFAULT_OUTPUT_DIR/<model>-<time>.json
    limit: Optional[int] = None
    skip: int = 0
    alpha: float = 0.1
    permutations: int = 1
    method: str = "letter"
    batch_size: int = 8
    min_rows_per_subject: int = 40
    load_in_4bit: bool = False
    workers: int = 0
    gpus_per_worker: float = 0.0

    def __post_init__(self):
        if not 0 < self.alpha < 1:
            raise ValueError(f"--alpha must be in (0, 1), got {self.alpha}")
        if self.min_rows_per_subject < 1:
            raise ValueError("--min-rows-per-subject must be at least 1")


def default_output(settings: CalibrateSettings, model_name: str) -> Path:
    if settings.adapter:
        return Path(settings.adapter) / ARTEFACT_NAME
    return Path(DEFAULT_OUTPUT_DIR) / f"{Path(model_name).name or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}.json"


def run_calibration(settings: CalibrateSettings) -> dict:
    """Fit and save; returns the summary `medqa calibrate` prints (path, temperature, ECE before
    and after on the calibration rows, thresholds)."""
    from medqa.evaluation.runner import fit_on

    s = settings
    records, data_summary = load_eval_records(s.data, s.limit, s.skip)
    if data_summary["rejected"]:
        err.print(f"[yellow]{data_summary['rejected']} malformed row(s) skipped[/]")
    scoring = EvaluateSettings(data=s.data, model=s.model, adapter=s.adapter, method=s.method,
                               batch_size=s.batch_size, load_in_4bit=s.load_in_4bit, workers=s.workers,
                               gpus_per_worker=s.gpus_per_worker)
    scorer, _, model_name, close = scorer_for(scoring)
    err.print(f"calibrating on {len(records)} question(s) from {s.data} ({s.permutations} rotation(s) each)")
    try:
        fitted = fit_on(scorer, records, alpha=s.alpha, permutations=s.permutations, method=s.method,
                        source=s.data, min_rows_per_subject=s.min_rows_per_subject)
    finally:
        close()
    path = fitted.save(Path(s.output) if s.output else default_output(s, model_name))
    conformal = fitted.conformal
    err.print(f"temperature {fitted.temperature:.3f}, ECE {fitted.data.ece_before:.3f} -> {fitted.data.ece_after:.3f}; "
              f"{len(conformal.subject_thresholds)} subject(s) with their own threshold; wrote {path}")
    return dict(calibration=str(path), model=model_name, adapter=s.adapter, rows=fitted.data.rows,
                rejected=data_summary["rejected"], temperature=fitted.temperature,
                ece_before=fitted.data.ece_before, ece_after=fitted.data.ece_after, alpha=conformal.alpha,
                threshold=conformal.threshold, subject_thresholds=conformal.subject_thresholds,
                permutations=fitted.permutations, method=fitted.method)
