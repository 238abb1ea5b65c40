"""Evaluation throughput in process vs on a Ray Data pool of 1 and 2 model replicas (one run).

    .venv/bin/python benchmarks/evaluate_ray.py --data ../shared/data/medmcqa_dev_public.jsonl --n 200

The same questions (the first `--n` labelled rows of `--data`, read at run time) are scored
with the letter method by `--model` (default: the embedded SmolLM2-135M, full precision):

- `in_process` (baseline): `runner.local_scorer` in this process, torch's default threads
  (one per core);
- `in_process_1thread`: the same with one torch thread (what each Ray replica gets: Ray sets
  OMP_NUM_THREADS to an actor's `num_cpus`, here 1);
- `ray_N`: `medqa.evaluation.distributed.ray_scorer` with N replicas, as
  `medqa evaluate --workers N` scores.

Per variant: `wall_s` is the end-to-end time, model load included (in process: load + score;
Ray: one scorer call, which starts the pool and loads the model in every replica);
`score_s` the scoring phase alone (in process: timed after a warm-up; Ray: the call's wall
time minus that of a call on N questions, i.e. pool start, model loads and one tiny block
each -- an estimate). `ratio` columns are questions/s over the in-process baseline's in the
same run, and every variant must pick the same options as the baseline.

Prints one JSON object as its last line; `benchmarks/RESULTS.md` records it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmcqa_dev_public.jsonl"


def in_process(args, records, threads):
    import torch

    from medqa.evaluation.runner import local_scorer
    from medqa.modeling.loading import load_for_scoring

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        started = time.perf_counter()
        model, tokenizer, _ = load_for_scoring(args.model, None, False)
        load_s = time.perf_counter() - started
        scorer = local_scorer(model, tokenizer, "letter", args.batch_size)
        scorer(records[:4])  # warm-up: first-call allocations, thread pools
        started = time.perf_counter()
        scores = scorer(records)
        score_s = time.perf_counter() - started
        return dict(threads=torch.get_num_threads(), load_s=load_s, score_s=score_s, wall_s=load_s + score_s), scores
    finally:
        torch.set_num_threads(before)


def on_ray(args, records, workers):
    from medqa.evaluation.distributed import ray_scorer

    with ray_scorer(args.model, None, False, "letter", args.batch_size, workers) as scorer:
        started = time.perf_counter()
        scorer(records[:workers])  # pool start + model load per replica + one question each
        startup_s = time.perf_counter() - started
        started = time.perf_counter()
        scores = scorer(records)
        wall_s = time.perf_counter() - started
        figures = dict(workers=workers, workers_used=scorer.workers_used, startup_s=startup_s, wall_s=wall_s,
                       score_s=max(wall_s - startup_s, 1e-9), replica_scoring_s=scorer.scoring_s)
    return figures, scores


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--n", type=int, default=200, help="questions scored per variant")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", default="1,2", help="Ray pool sizes (comma-separated)")
    args = parser.parse_args(argv)

    from medqa import runtime
    from medqa.evaluation.command import load_eval_records

    records, _ = load_eval_records(args.data, args.n)
    pools = [int(w) for w in args.workers.split(",")]
    results, baseline = {}, None
    for name, threads in (("in_process", None), ("in_process_1thread", 1)):
        figures, scores = in_process(args, records, threads)
        baseline = baseline or [s.predicted_index for s in scores]
        results[name] = figures | dict(same_predictions_as_baseline=[s.predicted_index for s in scores] == baseline)
        print(f"{name}: {figures}", file=sys.stderr)
    with runtime.session(num_cpus=max(os.cpu_count() or 1, max(pools)), worker_logs=False):
        for workers in pools:
            figures, scores = on_ray(args, records, workers)
            results[f"ray_{workers}"] = figures | dict(
                same_predictions_as_baseline=[s.predicted_index for s in scores] == baseline)
            print(f"ray_{workers}: {figures}", file=sys.stderr)
    base = results["in_process"]
    for row in results.values():
        row["questions_per_s"] = round(len(records) / row["score_s"], 2)
        row["questions_per_s_end_to_end"] = round(len(records) / row["wall_s"], 2)
        row["ratio"] = round(base["score_s"] / row["score_s"], 2)
        row["ratio_end_to_end"] = round(base["wall_s"] / row["wall_s"], 2)
        for key in ("load_s", "score_s", "wall_s", "startup_s", "replica_scoring_s"):
            if key in row:
                row[key] = round(row[key], 2)
    summary = dict(model=args.model, data=str(args.data), n=len(records), batch_size=args.batch_size,
                   cpu_count=os.cpu_count(), load_average=[round(x, 1) for x in os.getloadavg()], results=results)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
