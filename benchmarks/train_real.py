"""The real run: SmolLM2-135M QLoRA on the public MedMCQA dev rows minus a held-out 500.

    .venv/bin/python benchmarks/train_real.py [--heldout 500] [--limit-steps N]

Held-out set: every row whose position in ../shared/data/medmcqa_dev_public.jsonl
is a multiple of 6 (first 500 of those; a fixed, subject-mixed choice), written to a
temporary file and passed as `data.eval_source`, so the pipeline also removes
any (near-)duplicate of a held-out question from training. Reports held-out
accuracy (letter scoring, the evaluation scorer) before and after one epoch, the
majority-class baseline of the held-out answers, training tokens/s, peak RSS and
wall time. Hours on 2 CPU cores (about 5 s per 4x256-token step).
"""

from __future__ import annotations

import argparse
import collections
import json
import resource
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "medmcqa_dev_public.jsonl"


def split_heldout(n: int, work: Path) -> tuple[Path, Path]:
    lines = SHARED.read_text().splitlines(keepends=True)
    held = [line for i, line in enumerate(lines) if i % 6 == 0][:n]
    held_set = set(held)
    (work / "heldout.jsonl").write_text("".join(held))
    (work / "train.jsonl").write_text("".join(line for line in lines if line not in held_set))
    return work / "train.jsonl", work / "heldout.jsonl"


def accuracy(model_cfg, adapter: str | None, heldout: Path) -> tuple[float, list]:
    from medqa.data.sources import read_records
    from medqa.evaluation.mcq import mcq_accuracy
    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.lora import load_adapter

    records, _ = read_records(str(heldout))
    model = load_model(model_cfg)
    if adapter:
        model = load_adapter(model, adapter)
    return mcq_accuracy(model.eval(), load_tokenizer(model_cfg), records, batch_size=8), records


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--heldout", type=int, default=500)
    p.add_argument("--limit-steps", type=int, default=-1, help="cap optimizer steps (for a shorter trial)")
    a = p.parse_args()

    from medqa.config import load_config
    from medqa.training.trainer import init_ray, run_training

    work = Path(tempfile.mkdtemp(prefix="medqa-real-"))
    train_src, heldout = split_heldout(a.heldout, work)
    cfg = load_config(REPO / "jobs/configs/smollm2_qlora.yaml", [
        f"data.source={train_src}", f"data.eval_source={heldout}", f"data.output_dir={work / 'data'}",
        f"training.storage_path={work / 'runs'}", f"training.max_steps={a.limit_steps}"])
    before, records = accuracy(cfg.model, None, heldout)
    started = time.perf_counter()
    init_ray(cfg)
    summary, _ = run_training(cfg)
    wall = time.perf_counter() - started
    after, _ = accuracy(cfg.model, summary["checkpoint"], heldout)
    answers = collections.Counter(r.answer_index for r in records)
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # One epoch: every training row once (split evenly across workers).
    train_tokens = pc.sum(pq.read_table(work / "data" / "train", columns=["length"])["length"]).as_py()
    print(json.dumps({
        "heldout": len(records), "accuracy_before": before, "accuracy_after": after,
        "majority_baseline": max(answers.values()) / len(records), "chance": 0.25,
        "train_steps": summary["global_step"], "train_runtime_s": summary["train_runtime_s"],
        "tokens_per_s": train_tokens / summary["train_runtime_s"] if a.limit_steps <= 0 else None,
        "wall_time_s": round(wall, 1),
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checkpoint": summary["checkpoint"], "metrics": summary["metrics"],
    }, indent=2))


if __name__ == "__main__":
    main()
