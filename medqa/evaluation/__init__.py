"""Evaluation: score multiple-choice questions by option log-likelihood (through
`medqa.modeling.scoring`) and turn the scores into numbers people can check -- accuracy per
subject against chance and majority baselines, calibration, permutation consistency, error
analysis, explanation metrics -- and into JSON and Markdown reports with plots.

- `command.py` -- `run_evaluation(EvaluateSettings)`, the core of `medqa evaluate` and of the demo;
- `runner.py` -- score records, build the report dict (`build_report` is pure);
- `metrics.py`, `analysis.py`, `generation.py` -- the figures; `report.py` -- Markdown, plots, model card.

May import: config, console, data, modeling, reporting.
"""
