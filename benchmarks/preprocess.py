"""Preprocessing throughput: the Ray Data pipeline vs the same steps in one process.

    .venv/bin/python benchmarks/preprocess.py --rows 100000 [--write]

Builds a >= 100k-row MedMCQA-schema file in a temp dir by replicating the
public dev rows (../shared/data/medmcqa_dev_public.jsonl) with perturbations:
~88% of copies are rewritten (every third question word replaced, options
tagged) so they survive de-duplication and reach tokenisation, ~10% are near
duplicates (one word changed, spacing/case changed) that the MinHash stage
must catch, ~2% are exact duplicates with shuffled options; a few corrupted
lines exercise validation. Both engines get the same config (tiny-random's
tokenizer = SmolLM2's, augment_factor 2); Ray is started once before timing
(its start-up is reported separately) and the engines alternate `--repeats`
times. `--write` replaces the `## Preprocessing` section of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = REPO.parent / "shared" / "data" / "medmcqa_dev_public.jsonl"
OPTS = ("opa", "opb", "opc", "opd")


def _rewrite(row: dict, copy: int, rng: random.Random) -> dict:
    words = row["question"].split()
    words = [f"{w}{copy}x{i}" if i % 3 == 1 else w for i, w in enumerate(words)]
    return {**row, "id": f"{row['id']}-v{copy}", "question": " ".join(words) + f" (set {copy})",
            **{k: f"{row[k]} [{copy}]" for k in OPTS}}


def _near(row: dict, copy: int, rng: random.Random) -> dict:
    words = row["question"].split()
    if len(words) > 12:
        words[rng.randrange(len(words))] = "certainly"
    return {**row, "id": f"{row['id']}-n{copy}", "question": "  " + " ".join(words).upper() + "  "}


def _exact(row: dict, copy: int, rng: random.Random) -> dict:
    opts = [row[k] for k in OPTS]
    order = list(range(4))
    rng.shuffle(order)
    return {**row, "id": f"{row['id']}-e{copy}", **{k: opts[i] for k, i in zip(OPTS, order)},
            "cop": order.index(row["cop"])}


def build_dataset(path: Path, n_rows: int, seed: int = 0) -> int:
    rng = random.Random(seed)
    base = [json.loads(line) for line in DEV.open()]
    written = 0
    with path.open("w") as fh:
        while written < n_rows:
            copy = written // len(base)
            for row in base:
                if written >= n_rows:
                    break
                r = rng.random()
                make = _rewrite if copy == 0 or r < 0.88 else _near if r < 0.98 else _exact
                out = row if copy == 0 else make(row, copy, rng)
                fh.write(json.dumps(out) + "\n")
                written += 1
                if written % 20_000 == 0:
                    fh.write('{"question": "corrupted line\n')
                    written += 1
    return written


def _config(src: Path, out: Path):
    from medqa.config import load_config

    return load_config(None, [f"data.source={json.dumps(str(src))}", f"data.output_dir={json.dumps(str(out))}",
                              "model.name=tiny-random", "data.augment_factor=2"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=2, help="Runs per engine, alternated; the best of each is kept.")
    parser.add_argument("--write", action="store_true", help="Update benchmarks/RESULTS.md.")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import ray

    from medqa.data.preprocess import preprocess_in_process, preprocess_on_ray, tokenizer_path

    with tempfile.TemporaryDirectory(prefix="medqa-bench-") as tmp:
        tmp = Path(tmp)
        n = build_dataset(tmp / "rows.jsonl", args.rows)
        tokenizer_path(_config(tmp / "rows.jsonl", tmp / "x"))  # build the tiny checkpoint outside the timings
        t0 = time.perf_counter()
        ray.init(num_cpus=args.num_cpus, include_dashboard=False, configure_logging=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        # Alternate the engines and keep each one's best run: the machine is shared,
        # so the minimum is the least disturbed measurement of each.
        plains, rays = [], []
        for i in range(args.repeats):
            plains.append(preprocess_in_process(_config(tmp / "rows.jsonl", tmp / f"plain{i}"), progress=False))
            rays.append(preprocess_on_ray(_config(tmp / "rows.jsonl", tmp / f"ray{i}")))
        ray.shutdown()
    load = os.getloadavg()[1]  # 5-minute load average over the timed runs
    plain = min(plains, key=lambda s: s["seconds"])
    ray_summary = min(rays, key=lambda s: s["seconds"])
    same = {k: v for k, v in plain.items() if k not in ("engine", "seconds", "rows_per_second", "output_dir")} == \
        {k: v for k, v in ray_summary.items() if k not in ("engine", "seconds", "rows_per_second", "output_dir")}
    result = {
        "rows_in": n, "num_cpus": args.num_cpus, "machine_cpus": os.cpu_count(), "load_average_5min": round(load, 1),
        "plain_seconds": plain["seconds"], "ray_seconds": ray_summary["seconds"],
        "ray_start_seconds": round(ray_start, 2),
        "plain_rows_per_s": plain["rows_per_second"], "ray_rows_per_s": ray_summary["rows_per_second"],
        "ratio_ray_over_plain": round(ray_summary["rows_per_second"] / plain["rows_per_second"], 2),
        "same_summary": same, "repeats": args.repeats,
        "plain_all_seconds": [p["seconds"] for p in plains], "ray_all_seconds": [r["seconds"] for r in rays],
        "rejected": plain["rejected"], "duplicates_exact": plain["duplicates_exact"],
        "duplicates_near": plain["duplicates_near"], "rows_out": plain["rows_out"],
    }
    print(json.dumps(result))
    if args.write:
        write_results(result, " ".join(["benchmarks/preprocess.py"] + sys.argv[1:]))
    return 0


def write_results(r: dict, command: str) -> None:
    section = f"""## Preprocessing

Command: `.venv/bin/python {command}`. The machine (2 cores) was shared with other jobs, so the engines
ran alternately {r['repeats']} times each and the best run of each is shown (all runs: plain
{r['plain_all_seconds']} s, Ray {r['ray_all_seconds']} s; 5-minute load average at the end
{r['load_average_5min']} on {r['machine_cpus']} cores, so both engines got only a share of the CPUs).

| engine | rows in | seconds | rows/s | ratio |
|---|---|---|---|---|
| plain (one process, same step functions) | {r['rows_in']:,} | {r['plain_seconds']} | \
{r['plain_rows_per_s']:,} | 1.00 |
| Ray Data (`map_batches`, {r['num_cpus']} CPUs) | {r['rows_in']:,} | {r['ray_seconds']} | \
{r['ray_rows_per_s']:,} | **{r['ratio_ray_over_plain']}** |

Ray start-up ({r['ray_start_seconds']} s) is outside the timing; both runs include reading, validation
({r['rejected']} corrupted lines rejected), de-duplication ({r['duplicates_exact']:,} exact, \
{r['duplicates_near']:,} near),
augmentation (factor 2), tokenisation and parquet writing; {r['rows_out']:,} rows out. Identical summaries
from both engines: {r['same_summary']}.

Scaling out: validation/normalisation/MinHash signatures (step 1) and augmentation/prompting/tokenisation
(step 3) are row-parallel `map_batches` stages and scale with workers. Three things need a global view and
run once on the driver over compact columns: the cop-base detection, keep-first exact and near-duplicate
removal (an LSH band-bucket dictionary, O(rows)) and the contamination set lookup; the stratified split and
the answer-position plan for augmentation are O(rows) passes there too (about 10 s per 100k rows here,
all of it on the driver). More workers speed up the two row-parallel stages; past a few million rows the
driver step becomes the limit, and dedup can then be sharded by band key (`groupby` on band hashes, then
keep-first per connected group) while contamination becomes a broadcast-set filter inside step 1.
"""
    path = REPO / "benchmarks" / "RESULTS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find("## Preprocessing")
    if start >= 0:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("\n" + text[end + 1:] if end >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())
