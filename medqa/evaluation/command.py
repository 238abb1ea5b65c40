"""The `medqa evaluate` command's core: typed settings in; data read, model loaded, questions
scored, report files written. The CLI, the demo and the tests call `run_evaluation`.

All numbers come from `runner` (MCQ), `generation` (explanations) and
`analysis` (error patterns); this module only wires files and models together.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from medqa.console import err

if TYPE_CHECKING:
    from medqa.evaluation.calibration import Calibration
    from medqa.evaluation.runner import Scorer

MAX_REJECTIONS_LISTED = 20
DEFAULT_OUTPUT_DIR = "runs/eval"


@dataclass(frozen=True)
class EvaluateSettings:
    """One evaluation (the `medqa evaluate` flags; their help is in `evaluation/cli.py`)."""

    data: str
    model: Optional[str] = None  # default: the adapter's base model, else smollm2-135m
    adapter: Optional[str] = None
    limit: Optional[int] = None
    skip: int = 0
    output: Optional[str] = None  # default: DEFAULT_OUTPUT_DIR/<model>-<time>/report.json
    method: str = "letter"
    batch_size: int = 8
    load_in_4bit: bool = False
    consistency: int = 100
    generation: int = 0
    max_new_tokens: int = 96
    threads: Optional[int] = None
    run_dir: Optional[str] = None
    plots: bool = True
    permutations: int = 1
    calibration: Optional[str] = None  # a `medqa calibrate` artefact ...
    calibration_data: Optional[str] = None  # ... or SRC to fit one on first (not both)
    calibration_limit: Optional[int] = None
    conformal_alpha: Optional[float] = None  # default: the artefact's, else 0.1
    workers: int = 0  # 0: score in this process; N: a Ray Data pool of N model replicas
    gpus_per_worker: float = 0.0

    def __post_init__(self):
        if self.calibration and self.calibration_data:
            raise ValueError("give --calibration FILE or --calibration-data SRC, not both")
        if self.conformal_alpha is not None and not 0 < self.conformal_alpha < 1:
            raise ValueError(f"--conformal-alpha must be in (0, 1), got {self.conformal_alpha}")
        if self.permutations < 1 or self.workers < 0 or self.gpus_per_worker < 0:
            raise ValueError("--permutations must be >= 1, --workers and --gpus-per-worker >= 0")
        if self.gpus_per_worker and not self.workers:
            raise ValueError("--gpus-per-worker needs --workers N (the Ray Data pool)")


def load_eval_records(src: str, limit: Optional[int], skip: int = 0) -> tuple[list, dict]:
    """Valid, labelled records (`limit` of them after the first `skip`) and a summary of what
    was left out. `skip` lets one file give disjoint calibration and evaluation rows.

    Malformed rows are counted and listed with their reasons, never fatal.
    """
    from medqa.data.sources import read_records

    records, rejections = read_records(src)
    labelled = [r for r in records if r.answer_index is not None][skip:]
    if limit is not None:
        labelled = labelled[:limit]
    if not labelled:
        raise ValueError(f"{src}: no valid rows with an answer to evaluate ({len(rejections)} rejected)")
    data_summary = dict(
        source=src,
        rows_valid=len(records),
        unlabelled=len(records) - len([r for r in records if r.answer_index is not None]),
        rejected=len(rejections),
        rejections=[_rejection_dict(r) for r in rejections[:MAX_REJECTIONS_LISTED]],
        limit=limit,
        skip=skip,
    )
    return labelled, data_summary


def _rejection_dict(rejection) -> dict:
    row = rejection.to_dict() if hasattr(rejection, "to_dict") else dict(rejection.__dict__)
    row.pop("raw", None)  # the raw row may be large; line and reason locate it
    return row


def default_output(model_name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model_name).name or model_name)
    return Path(DEFAULT_OUTPUT_DIR) / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}" / "report.json"


def scorer_for(s: EvaluateSettings) -> tuple[Scorer, Callable[[], tuple], str, Callable[[], None]]:
    """(scorer, in-process model loader, model name, close) for the settings: in this process,
    or a Ray Data pool of `s.workers` replicas (the model is then loaded here only if asked)."""
    from medqa.evaluation.runner import local_scorer
    from medqa.modeling.loading import DEFAULT_SCORING_MODEL, adapter_base_model, load_for_scoring

    if s.workers:
        from medqa.evaluation.distributed import ray_scorer

        name = s.model or (s.adapter and adapter_base_model(s.adapter)) or DEFAULT_SCORING_MODEL
        scorer = ray_scorer(name, s.adapter, s.load_in_4bit, s.method, s.batch_size, s.workers, s.gpus_per_worker)
        return scorer, lambda: load_for_scoring(name, s.adapter, s.load_in_4bit)[:2], name, scorer.close
    model, tokenizer, name = load_for_scoring(s.model, s.adapter, s.load_in_4bit)
    return (local_scorer(model, tokenizer, s.method, s.batch_size, progress=True), lambda: (model, tokenizer),
            name, lambda: None)


def load_calibration(s: EvaluateSettings) -> Calibration:
    """`s.calibration`, checked against the settings before any model is loaded."""
    from medqa.evaluation.calibration import Calibration

    loaded = Calibration.load(s.calibration)
    if s.conformal_alpha is not None and s.conformal_alpha != loaded.conformal.alpha:
        raise ValueError(f"{s.calibration} was fitted at alpha {loaded.conformal.alpha}, not {s.conformal_alpha}: "
                         f"refit it with `medqa calibrate --alpha {s.conformal_alpha}`")
    if (loaded.permutations, loaded.method) != (s.permutations, s.method):
        raise ValueError(f"{s.calibration} was fitted on --method {loaded.method} --permutations "
                         f"{loaded.permutations} (1 rotation = none); evaluate with the same or refit it")
    return loaded


def fit_calibration_data(s: EvaluateSettings, scorer: Scorer) -> Calibration:
    """A calibration fitted now on `s.calibration_data`, scored like the evaluated rows."""
    from medqa.evaluation.runner import fit_on

    records, _ = load_eval_records(s.calibration_data, s.calibration_limit)
    err.print(f"calibrating on {len(records)} question(s) from {s.calibration_data}")
    alpha = 0.1 if s.conformal_alpha is None else s.conformal_alpha
    return fit_on(scorer, records, alpha=alpha, permutations=s.permutations, method=s.method,
                  source=s.calibration_data)


def run_evaluation(settings: EvaluateSettings) -> tuple[dict, dict]:
    """(summary, report): the summary is what `medqa evaluate` prints last; the report is the
    JSON written to `settings.output` (the Markdown report and plots go beside it)."""
    from medqa.evaluation.analysis import error_analysis
    from medqa.evaluation.runner import evaluate_model

    s = settings
    calibrated = load_calibration(s) if s.calibration else None
    started = time.perf_counter()
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    records, data_summary = load_eval_records(s.data, s.limit, s.skip)
    if data_summary["rejected"]:
        err.print(f"[yellow]{data_summary['rejected']} malformed row(s) skipped[/] (listed in the report)")
    scorer, load_model, model_name, close = scorer_for(s)
    try:
        if s.calibration_data:
            calibrated = fit_calibration_data(s, scorer)
        err.print(f"evaluating {len(records)} question(s) from {s.data}")
        report, _ = evaluate_model(scorer, records, method=s.method, consistency_n=s.consistency,
                                   permutations=s.permutations, calibrated=calibrated)
    finally:
        close()
    report.update(model=model_name, adapter=s.adapter, load_in_4bit=s.load_in_4bit, data=data_summary,
                  workers=s.workers)
    if calibrated is not None:
        report["calibration"]["artefact"] = s.calibration
        report["calibration"]["overlap_with_evaluated"] = overlap(s.calibration_data, records)
    if s.generation:
        from medqa.evaluation.generation import evaluate_generation

        model, tokenizer = load_model()
        report["generation"] = evaluate_generation(
            model, tokenizer, records, s.generation, max_new_tokens=s.max_new_tokens, progress=True
        )
    report["error_analysis"] = error_analysis(report, records)
    report["seconds_wall"] = time.perf_counter() - started  # data, model load, scoring, extras
    output = Path(s.output) if s.output else default_output(model_name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    summary = dict(accuracy=report["accuracy"], n=report["n"], report=str(output),
                   baselines=report["baselines"], ece=report["ece"],
                   seconds_per_question=report["seconds_per_question"], rejected=data_summary["rejected"])
    summary |= {key: _headline(report[key]) for key in ("debiased", "calibration", "conformal") if key in report}
    if s.plots:
        from medqa.evaluation.report import write_markdown_report

        summary["markdown"] = str(write_markdown_report(report, output.with_suffix(".md"), run_dir=s.run_dir))
    err.print(f"accuracy {report['accuracy']:.3f} on {report['n']} (chance {report['baselines']['chance']:.2f}, "
              f"majority {report['baselines']['majority']:.3f}); report: {output}")
    return summary, report


def _headline(entry: dict) -> dict:
    """An entry of the report without its tables (per subject, bins): what the summary prints."""
    return {k: v for k, v in entry.items() if not isinstance(v, (dict, list))}


def overlap(calibration_src: Optional[str], records) -> Optional[int]:
    """Evaluated questions that were also calibration rows (by question text), when the
    calibration data was given here: a calibration fitted on the evaluated rows reports
    coverage it has not earned."""
    if not calibration_src:
        return None
    from medqa.data.sources import read_records

    seen = {r.question.strip().lower() for r in read_records(calibration_src)[0]}
    found = sum(r.question.strip().lower() in seen for r in records)
    if found:
        err.print(f"[yellow]{found} evaluated question(s) are also calibration rows[/]: coverage is optimistic")
    return found
