"""Calibrated answers for a real model: temperature scaling, conformal answer sets per subject,
position debiasing -- fitted on one half of the public MedMCQA rows, measured on the other.

    .venv/bin/python benchmarks/calibration.py --data ../shared/data/medmcqa_dev_public.jsonl

The rows are shuffled (seed 0) and split in two halves: calibration and evaluation, disjoint.
Every row is scored once (letter method, `--model`, zero-shot); both figures below come from
those scores through the package's own path (`runner.fit_on` / `runner.evaluate_model` take
any `Scorer`; here one that replays the stored scores):

- raw: ECE of the scorer's probabilities on the evaluation half;
- calibrated: temperature and conformal thresholds fitted on the calibration half (alpha 0.1,
  Mondrian for subjects with >= 40 calibration rows), ECE, coverage and set size on the other;
- debiased: the first `--debias-n` evaluation rows scored again under all 4 rotations of their
  options, raw vs debiased accuracy against the always-majority baseline.

Prints one JSON object (also written to `--output`); `benchmarks/RESULTS.md` records it.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def replaying(scored: dict):
    """A `Scorer` that answers from scores computed once (keyed by question and option order)."""
    def score(records):
        return [scored[(r.question, tuple(r.options))] for r in records]

    return score


def score_once(scorer, records, batch: int = 64) -> dict:
    from tqdm import tqdm

    scored = {}
    for start in tqdm(range(0, len(records), batch), desc="scoring", unit="batch"):
        chunk = records[start:start + batch]
        scored.update({(r.question, tuple(r.options)): s for r, s in zip(chunk, scorer(chunk))})
    return scored


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--limit", type=int, default=None, help="use the first N shuffled rows")
    parser.add_argument("--debias-n", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--output", default="runs/benchmarks/calibration.json")
    args = parser.parse_args(argv)

    import torch

    from medqa.data.sources import read_records
    from medqa.evaluation import calibration
    from medqa.evaluation.runner import evaluate_model, fit_on, local_scorer
    from medqa.modeling.loading import load_for_scoring

    if args.threads:
        torch.set_num_threads(args.threads)
    records = [r for r in read_records(args.data)[0] if r.answer_index is not None]
    random.Random(0).shuffle(records)
    records = records[: args.limit]
    half = len(records) // 2
    cal_rows, eval_rows = records[:half], records[half:]
    model, tokenizer, _ = load_for_scoring(args.model, None)
    scorer = local_scorer(model, tokenizer, batch_size=8)

    started = time.perf_counter()
    scored = score_once(scorer, records)
    debias_rows = eval_rows[: args.debias_n]
    scored |= score_once(scorer, [r for q in debias_rows for r in calibration.rotations(q, 4)[1:]])
    seconds = time.perf_counter() - started
    replay = replaying(scored)

    fitted = fit_on(replay, cal_rows, alpha=args.alpha)
    report, _ = evaluate_model(replay, eval_rows, consistency_n=0, calibrated=fitted)
    debiased, _ = evaluate_model(replay, debias_rows, consistency_n=len(debias_rows), permutations=4)
    conformal = report["conformal"]
    big = {s: v for s, v in conformal["per_subject"].items() if v["n"] >= 40}
    result = dict(
        model=args.model, rows_calibration=len(cal_rows), rows_evaluation=len(eval_rows), alpha=args.alpha,
        accuracy=report["accuracy"], majority=report["baselines"]["majority"],
        ece_raw=report["ece"], ece_calibrated=report["calibration"]["ece"], temperature=fitted.temperature,
        ece_calibration_rows=dict(before=fitted.data.ece_before, after=fitted.data.ece_after),
        coverage=conformal["coverage"], mean_set_size=conformal["mean_set_size"],
        mondrian_subjects=conformal["mondrian_subjects"],
        subjects_40=big, worst_subject_gap=max([abs(v["coverage"] - (1 - args.alpha)) for v in big.values()] or [None]),
        debiased=dict(n=len(debias_rows), **{k: debiased["debiased"][k] for k in
                                              ("accuracy", "accuracy_raw", "majority", "changed",
                                               "prediction_distribution")},
                      raw_prediction_distribution=debiased["prediction_distribution"],
                      consistency_raw=debiased["permutation_consistency"]["consistency"]),
        scoring_seconds=round(seconds, 1), forwards=len(scored),
    )
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
