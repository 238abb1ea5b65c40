"""The real run: SmolLM2-135M QLoRA on the public MedMCQA dev rows minus a held-out 500.

    .venv/bin/python benchmarks/train_real.py [--heldout 500] [--limit-steps N]
    .venv/bin/python benchmarks/train_real.py --adapter DIR   # re-score a trained adapter only

Held-out set: every row whose position in ../shared/data/medmcqa_dev_public.jsonl
is a multiple of 6 (first 500 of those; a fixed, subject-mixed choice), written to a
temporary file and passed as `data.eval_source`, so the pipeline also removes
any (near-)duplicate of a held-out question from training. Reports held-out
accuracy (letter scoring, the evaluation scorer), the share of each predicted
letter and the mean probability of the right letter, before and after one epoch;
the majority-class baseline of the held-out answers, training tokens/s, the
driver's peak RSS and wall time. About 30 minutes on 2 CPU cores (23 of them
training: 158 steps of 2 workers x 2 x 4 examples).
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


def heldout_scores(model_cfg, adapter: str | None, records: list) -> dict:
    """Accuracy, the share of each predicted letter and the mean probability of the right
    letter (an adapter that moves probabilities but not the argmax shows up here)."""
    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.lora import load_adapter
    from medqa.modeling.scoring import score_records

    model = load_model(model_cfg)
    if adapter:
        model = load_adapter(model, adapter)
    scores = score_records(model.eval(), load_tokenizer(model_cfg), records, batch_size=8)
    predicted = collections.Counter("ABCD"[s.predicted_index] for s in scores)
    return {
        "accuracy": sum(s.predicted_index == r.answer_index for s, r in zip(scores, records)) / len(records),
        "predicted_share": {k: round(predicted[k] / len(records), 3) for k in "ABCD"},
        "mean_p_answer": round(sum(s.probabilities[r.answer_index] for s, r in zip(scores, records)) / len(records), 4),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--heldout", type=int, default=500)
    p.add_argument("--limit-steps", type=int, default=-1, help="cap optimizer steps (for a shorter trial)")
    p.add_argument("--adapter", help="score this trained adapter instead of training (held-out rows only)")
    a = p.parse_args()

    from medqa.config import load_config
    from medqa.data.sources import read_records
    from medqa.training.driver import init_ray, run_training

    work = Path(tempfile.mkdtemp(prefix="medqa-real-"))
    train_src, heldout = split_heldout(a.heldout, work)
    cfg = load_config(REPO / "jobs/configs/smollm2_qlora.yaml", [
        f"data.source={train_src}", f"data.eval_source={heldout}", f"data.output_dir={work / 'data'}",
        f"training.storage_path={work / 'runs'}", f"training.max_steps={a.limit_steps}"])
    records, _ = read_records(str(heldout))
    before = heldout_scores(cfg.model, None, records)
    majority = max(collections.Counter(r.answer_index for r in records).values()) / len(records)
    if a.adapter:
        after = heldout_scores(cfg.model, a.adapter, records)
        print(json.dumps({"heldout": len(records), "before": before, "after": after,
                          "majority_baseline": majority}, indent=2))
        return
    started = time.perf_counter()
    init_ray(cfg)
    summary, _ = run_training(cfg)
    wall = time.perf_counter() - started
    after = heldout_scores(cfg.model, summary["checkpoint"], records)
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # One epoch: every training row once (split evenly across workers).
    train_tokens = pc.sum(pq.read_table(work / "data" / "train", columns=["length"])["length"]).as_py()
    print(json.dumps({
        "heldout": len(records), "before": before, "after": after,
        "majority_baseline": majority, "chance": 0.25,
        "train_steps": summary["global_step"], "train_runtime_s": summary["train_runtime_s"],
        "tokens_per_s": train_tokens / summary["train_runtime_s"] if a.limit_steps <= 0 else None,
        "wall_time_s": round(wall, 1),
        "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "checkpoint": summary["checkpoint"], "metrics": summary["metrics"],
    }, indent=2))


if __name__ == "__main__":
    main()
