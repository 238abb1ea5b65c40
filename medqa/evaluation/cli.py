"""`medqa evaluate`: score a model (optionally + LoRA adapter) on MCQ data and write a report.

Light at import (argparse and the settings); the handler imports torch and friends.
"""

from __future__ import annotations

import argparse
import dataclasses

from medqa.evaluation.command import DEFAULT_OUTPUT_DIR, EvaluateSettings


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="multiple-choice accuracy, baselines, calibration and plots for a model (+ adapter)",
        description="Score every question by option log-likelihood and write a JSON report, a Markdown "
        "report and PNG plots. The last stdout line is a JSON summary.",
    )
    p.add_argument("--model", default=None, help="preset (smollm2-135m, tiny-random), hub id or local path "
                   "(default: the adapter's base model, else smollm2-135m)")
    p.add_argument("--adapter", default=None, help="LoRA adapter directory loaded on top of the model")
    p.add_argument("--data", required=True, help="SRC: .jsonl/.json/.csv/.parquet file, `sample`, or hub id[:split]")
    p.add_argument("--limit", type=_positive_int, default=None, help="evaluate the first N valid rows")
    p.add_argument("--output", default=None,
                   help=f"JSON report path (default: {DEFAULT_OUTPUT_DIR}/<model>-<time>/report.json); "
                   "the Markdown report and plots go beside it")
    p.add_argument("--method", choices=["letter", "text"], default="letter",
                   help="letter: score ' A'..' D' after the listed options (lm-eval-harness medmcqa); "
                   "text: score option texts, normalised per byte (default: letter)")
    p.add_argument("--batch-size", type=_positive_int, default=8, help="sequences per forward pass (default: 8)")
    p.add_argument("--load-in-4bit", action="store_true",
                   help="load the base model in 4-bit NF4 (default: full precision)")
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


def evaluate_command(args) -> int:
    from medqa.console import emit_json
    from medqa.evaluation.command import run_evaluation

    names = {f.name for f in dataclasses.fields(EvaluateSettings)} - {"plots"}
    settings = EvaluateSettings(**{name: getattr(args, name) for name in names}, plots=not args.no_plots)
    emit_json(run_evaluation(settings)[0])
    return 0
