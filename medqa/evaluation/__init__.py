"""Evaluation: score multiple-choice questions by option log-likelihood (through
`medqa.modeling.scoring`) and turn the scores into numbers people can check -- accuracy per
subject against chance and majority baselines, calibration, permutation consistency, error
analysis, explanation metrics -- and into JSON and Markdown reports with plots.

- `command.py` -- `run_evaluation(EvaluateSettings)`, the core of `medqa evaluate` and of the demo;
- `calibrate.py` -- `run_calibration(CalibrateSettings)`, the core of `medqa calibrate`;
- `runner.py` -- score records through a `Scorer` (K rotations each), build the report dict
  (`build_report` is pure), fit a calibration;
- `calibration.py` -- temperature scaling, position debiasing, conformal answer sets (pure);
- `distributed.py` -- the `Scorer` on a Ray Data pool of model replicas (`--workers N`);
- `metrics.py`, `analysis.py`, `generation.py` -- the figures; `report.py` -- Markdown, plots, model card.

May import: config, console, data, modeling, reporting, runtime (`distributed.py`), ray (`distributed.py`).
"""
