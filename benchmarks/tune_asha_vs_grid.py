"""ASHA vs the full grid over the same space and max_t (tiny model, CPU).

    .venv/bin/python benchmarks/tune_asha_vs_grid.py [--size small|large|deep] [--lr-order ascending|mixed] \
        [--out runs/bench-tune]

Both searches run the same grid (lora_r x learning rates) on one local Ray.
`small`: r {4, 8} x 4 learning rates, max_t 6, reduction factor 2 (8 trials).
`large`: r {4, 8, 16} x 9 learning rates, max_t 9, reduction factor 3 (27
trials: rungs at 1, 3 and 9, the shape ASHA is meant for).
`deep`: the `large` grid with max_t 16 and reduction factor 4 (rungs at 1, 4, 16).
`ascending` learning rates put the worst trials first on this model and each
next trial beats the last: the hard case for ASHA. `mixed` is a fixed shuffle.
One local Ray with 4 logical CPUs (2 trials at once, 1 Train worker each). The
grid runs every trial to max_t (FIFO); ASHA (grace 1) stops trials at its
rungs. Reported: total trial iterations of each and their ratio (goal <= 0.4),
best eval loss of each and the gap, wall times. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


LARGE_LRS = [1e-5, 2.5e-5, 6e-5, 1.5e-4, 4e-4, 1e-3, 2.5e-3, 6e-3, 1.5e-2]
# size -> (lora_r values, learning rates in ascending order, max_t, reduction factor)
SIZES = {
    "small": ([4, 8], [1e-5, 1e-4, 1e-3, 1e-2], 6, 2),
    "large": ([4, 8, 16], LARGE_LRS, 9, 3),
    "deep": ([4, 8, 16], LARGE_LRS, 16, 4),
}
MIXED = [5, 0, 8, 2, 6, 1, 7, 3, 4]  # a fixed shuffle of positions (the first len(lrs) that fit)


def ordered(lrs: list[float], order: str) -> list[float]:
    return lrs if order == "ascending" else [lrs[i] for i in MIXED if i < len(lrs)]


def search(kind: str, out: Path, size: str, lr_order: str) -> dict:
    from medqa.config import load_config
    from medqa.tuning.search import run_search

    ranks, lrs, max_t, factor = SIZES[size]
    cfg = load_config("jobs/configs/tune_smoke.yaml", [
        f"data.output_dir={out}/data", f"training.storage_path={out}", f"tuning.name={kind}",
        "tuning.grid=true", f"tuning.lora_r={ranks}", f"tuning.lr_grid={ordered(lrs, lr_order)}",
        "tuning.lora_dropout=[0.0]", "tuning.num_samples=1", f"tuning.max_t={max_t}",
        "tuning.grace_period=1", f"tuning.reduction_factor={factor}", "tuning.max_concurrent_trials=2",
        f"tuning.scheduler={'asha' if kind == 'asha' else 'fifo'}",
        "training.eval_steps=1", "training.eval_mcq_limit=0",
    ])
    return run_search(cfg)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", choices=sorted(SIZES), default="large")
    parser.add_argument("--lr-order", choices=["ascending", "mixed"], default="mixed")
    parser.add_argument("--out", default="runs/bench-tune")
    args = parser.parse_args()
    import ray

    out = Path(args.out).resolve()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        grid, asha = (search(kind, out, args.size, args.lr_order) for kind in ("grid", "asha"))
    finally:
        ray.shutdown()
    report = {
        "trials": grid["trials"], "size": args.size, "max_t": SIZES[args.size][2], "lr_order": args.lr_order,
        "grid_iterations": grid["total_iterations"], "asha_iterations": asha["total_iterations"],
        "iterations_ratio": round(asha["total_iterations"] / grid["total_iterations"], 3),
        "asha_stopped_early": asha["stopped_early"],
        "grid_best_eval_loss": grid["best_metric"], "asha_best_eval_loss": asha["best_metric"],
        "best_gap": round(asha["best_metric"] - grid["best_metric"], 5),
        "grid_best": grid["best_params"], "asha_best": asha["best_params"],
        "grid_wall_s": grid["wall_time_s"], "asha_wall_s": asha["wall_time_s"],
        "wall_ratio": round(asha["wall_time_s"] / grid["wall_time_s"], 3),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
