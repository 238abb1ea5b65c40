"""ASHA vs the full grid over the same space and max_t (tiny model, CPU).

    .venv/bin/python benchmarks/tune_asha_vs_grid.py [--max-t 6] [--lr-order ascending|mixed] [--out runs/bench-tune]

Both searches run the same grid (lora_r x 4 learning rates) on one local Ray.
`ascending` learning rates put the worst trials first on this model and each
next trial beats the last: the hard case for ASHA. `mixed` is a fixed
shuffle (1e-3, 1e-5, 1e-2, 1e-4). One local Ray with 4 logical CPUs (2 trials at once,
1 Train worker each). The grid runs every trial to max_t (FIFO); ASHA (grace
1, reduction factor 2) stops trials at its rungs. Reported: total trial
iterations of each and their ratio (goal <= 0.4), best eval loss of each and
the gap, wall times. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


LR_ORDERS = {"ascending": "[1.0e-5, 1.0e-4, 1.0e-3, 1.0e-2]", "mixed": "[1.0e-3, 1.0e-5, 1.0e-2, 1.0e-4]"}


def search(kind: str, out: Path, max_t: int, lr_order: str) -> dict:
    from medqa.config import load_config
    from medqa.tuning.search import run_search

    cfg = load_config("jobs/configs/tune_smoke.yaml", [
        f"data.output_dir={out}/data", f"training.storage_path={out}", f"tuning.name={kind}",
        "tuning.grid=true", "tuning.lora_r=[4, 8]", f"tuning.lr_grid={LR_ORDERS[lr_order]}",
        "tuning.lora_dropout=[0.0]", "tuning.num_samples=1", f"tuning.max_t={max_t}",
        "tuning.grace_period=1", "tuning.reduction_factor=2", "tuning.max_concurrent_trials=2",
        f"tuning.scheduler={'asha' if kind == 'asha' else 'fifo'}",
        "training.eval_steps=1", "training.eval_mcq_limit=0",
    ])
    return run_search(cfg)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-t", type=int, default=6)
    parser.add_argument("--lr-order", choices=sorted(LR_ORDERS), default="ascending")
    parser.add_argument("--out", default="runs/bench-tune")
    args = parser.parse_args()
    import ray

    out = Path(args.out).resolve()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        grid, asha = (search(kind, out, args.max_t, args.lr_order) for kind in ("grid", "asha"))
    finally:
        ray.shutdown()
    report = {
        "trials": grid["trials"], "max_t": args.max_t, "lr_order": args.lr_order,
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
