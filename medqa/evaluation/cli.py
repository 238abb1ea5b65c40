"""`medqa evaluate`: score a model (optionally + LoRA adapter) on MCQ data and write a report;
`medqa calibrate`: fit the temperature and conformal answer sets that evaluation and serving apply.

Light at import (argparse and the settings); the handler imports torch and friends.
"""

from __future__ import annotations

import argparse
import dataclasses

from medqa.evaluation.command import DEFAULT_OUTPUT_DIR, EvaluateSettings


def register(sub) -> None:
    _register_evaluate(sub)
    _register_calibrate(sub)


def _scoring_flags(p, verb: str) -> None:
    """The flags that say how questions are scored, shared by evaluate and calibrate."""
    p.add_argument("--model", default=None, help="preset (smollm2-135m, tiny-random), hub id or local path "
                   "(default: the adapter's base model, else smollm2-135m)")
    p.add_argument("--adapter", default=None, help="LoRA adapter directory loaded on top of the model")
    p.add_argument("--data", required=True, help="SRC: .jsonl/.json/.csv/.parquet file, `sample`, or hub id[:split]")
    p.add_argument("--limit", type=_positive_int, default=None, help=f"{verb} the first N valid rows (after --skip)")
    p.add_argument("--skip", type=_non_negative_int, default=0, metavar="N",
                   help="leave out the first N valid rows (disjoint calibration and evaluation rows from one file)")
    p.add_argument("--method", choices=["letter", "text"], default="letter",
                   help="letter: score ' A'..' D' after the listed options (lm-eval-harness medmcqa); "
                   "text: score option texts, normalised per byte (default: letter)")
    p.add_argument("--permutations", type=_positive_int, default=1, metavar="K",
                   help="score each question under K cyclic rotations of its options and average each option's "
                   "probability by its text: the answer no longer depends on its letter (K = number of options "
                   "removes the position prior; costs K forward passes; default: 1, off)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="sequences per forward pass (default: 8)")
    p.add_argument("--load-in-4bit", action="store_true",
                   help="load the base model in 4-bit NF4 (default: full precision)")
    p.add_argument("--workers", type=_non_negative_int, default=0, metavar="N",
                   help="score on a Ray Data pool of N model replicas (attaches to RAY_ADDRESS, else a local Ray; "
                   "default: 0, in this process)")
    p.add_argument("--gpus-per-worker", type=_non_negative_float, default=0.0, metavar="G",
                   help="GPUs per replica with --workers (default: 0)")


def _register_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="multiple-choice accuracy, baselines, calibration and plots for a model (+ adapter)",
        description="Score every question by option log-likelihood and write a JSON report, a Markdown "
        "report and PNG plots. The last stdout line is a JSON summary.",
    )
    _scoring_flags(p, "evaluate")
    p.add_argument("--output", default=None,
                   help=f"JSON report path (default: {DEFAULT_OUTPUT_DIR}/<model>-<time>/report.json); "
                   "the Markdown report and plots go beside it")
    p.add_argument("--calibration", default=None, metavar="FILE",
                   help="a `medqa calibrate` artefact: report calibrated ECE and conformal answer sets "
                   "(fitted with the same --method and --permutations)")
    p.add_argument("--calibration-data", default=None, metavar="SRC",
                   help="fit the calibration first on these labelled rows (never the evaluated ones)")
    p.add_argument("--calibration-limit", type=_positive_int, default=None, metavar="N",
                   help="use the first N valid rows of --calibration-data")
    p.add_argument("--conformal-alpha", type=_unit_interval, default=None, metavar="A",
                   help="target miscoverage of the answer sets (default: the artefact's, else 0.1: 90%% sets)")
    p.add_argument("--consistency", type=_non_negative_int, default=100, metavar="N",
                   help="re-score the first N questions with options rotated by one place (0 = skip; default: 100)")
    p.add_argument("--generation", type=_non_negative_int, default=0, metavar="N",
                   help="explanation metrics (ROUGE-L, BLEU, perplexity, verbosity) on N rows that have `exp` "
                   "(default: 0)")
    p.add_argument("--max-new-tokens", type=_positive_int, default=96,
                   help="generation length for --generation (default: 96)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a heavily shared CPU)")
    p.add_argument("--run-dir", default=None, help="training run directory whose curves go into the report")
    p.add_argument("--no-plots", action="store_true", help="write only the JSON report")
    p.set_defaults(func=evaluate_command)


def _register_calibrate(sub) -> None:
    p = sub.add_parser(
        "calibrate",
        help="fit temperature scaling and conformal answer sets on a labelled calibration split",
        description="Score the calibration rows as evaluation and serving will, fit one temperature (NLL) and "
        "split-conformal thresholds (LAC; one per subject with enough rows, pooled otherwise), and write a JSON "
        "artefact. The last stdout line is a JSON summary.",
    )
    _scoring_flags(p, "calibrate on")
    p.add_argument("--output", default=None, metavar="FILE",
                   help="artefact path (default: <adapter>/calibration.json, where the server finds it; "
                   "else runs/calibration/<model>-<time>.json)")
    p.add_argument("--alpha", type=_unit_interval, default=0.1,
                   help="target miscoverage: sets hold the answer for 1 - alpha of questions (default: 0.1)")
    p.add_argument("--min-rows-per-subject", type=_positive_int, default=40, metavar="N",
                   help="subjects with at least N rows get their own threshold (default: 40)")
    p.set_defaults(func=calibrate_command)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _unit_interval(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be strictly between 0 and 1, got {text}")
    return value


def _settings(cls, args, **extra):
    names = {f.name for f in dataclasses.fields(cls)} - set(extra)
    return cls(**{name: getattr(args, name) for name in names}, **extra)


def calibrate_command(args) -> int:
    from medqa.console import emit_json
    from medqa.evaluation.calibrate import CalibrateSettings, run_calibration

    emit_json(run_calibration(_settings(CalibrateSettings, args)))
    return 0


def evaluate_command(args) -> int:
    from medqa.console import emit_json
    from medqa.evaluation.command import run_evaluation

    emit_json(run_evaluation(_settings(EvaluateSettings, args, plots=not args.no_plots))[0])
    return 0
