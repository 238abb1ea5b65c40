"""Training benchmarks (ratios against a baseline in the same run).

    .venv/bin/python benchmarks/train_throughput.py   # SmolLM2-135M, 36 steps, 160 rows, 3 rounds

1. Ray Train, 1 worker vs a plain single-process HF Trainer + PEFT: same model,
   prepared data, batches and steps, one evaluation and one checkpoint at the
   last step on both sides; tokens/s over the Trainer's own `train_runtime`
   (startup excluded on both sides). Goal >= 0.9.
2. Batching: naive padding vs length grouping vs packing in the plain Trainer,
   each over one epoch of the same training rows (so every strategy trains on
   the same tokens); non-pad tokens/s. Goal >= 1.5 for the chosen strategy.
3. Peak memory of the base: 4-bit NF4 vs fp32 (`get_memory_footprint`, and
   RSS growth while loading). Goal <= 0.4.

The first two run `--repeats` rounds, interleaved, with the order reversed
every other round so that drift in a shared VM's speed falls on both sides;
the reported ratio is the median of the per-round ratios (each round's own
figures are kept beside it).

Data: the first `--rows` rows of ../shared/data/medmcqa_dev_public.jsonl through
the project's data pipeline (never copied into the repo).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
from functools import partial
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "medmcqa_dev_public.jsonl"


def prepare(rows: int, out: Path, overrides: list[str]) -> list[str]:
    """Write the first `rows` shared rows through the pipeline; the overrides every run then uses."""
    from medqa.config import load_config
    from medqa.data.preprocess import preprocess_on_ray

    src = out / "rows.jsonl"
    src.write_text("".join(SHARED.read_text().splitlines(keepends=True)[:rows]))
    overrides = overrides + [f"data.source={src}", f"data.output_dir={out / 'data'}", "data.augment_factor=1"]
    preprocess_on_ray(load_config(None, overrides))
    return overrides


def plain_hf(cfg, data_dir: Path, evaluate: bool = False) -> dict:
    """Single-process HF Trainer + PEFT over the prepared tables, built by the same `make_trainer`,
    batching and step count (`training.max_steps`, else `training.epochs`) as the Ray worker's.

    With `evaluate` it evaluates and saves a checkpoint on the config's schedule, as the
    Ray worker does; without, it only trains."""
    from medqa.modeling.loading import load_tokenizer
    from medqa.training import hf_trainer
    from medqa.training.batching import total_steps
    from medqa.training.driver import load_tables

    tables = load_tables(cfg, data_dir)
    args = hf_trainer.training_arguments(cfg, tempfile.mkdtemp(), total_steps(tables["train"].num_rows, cfg.training))
    if not evaluate:
        args.eval_strategy = "no"
        args.save_strategy = "no"
    args.report_to = []
    trainer = hf_trainer.make_trainer(args, hf_trainer.build_model(cfg), load_tokenizer(cfg.model), tables["train"],
                              tables["validation"] if evaluate else None)
    sizes = None if evaluate else count_batch_tokens(trainer)
    out = trainer.train()
    result = throughput(trainer.state.num_input_tokens_seen, out.metrics["train_runtime"])
    result["steps"] = trainer.state.global_step
    if sizes is not None:
        result["tokens_incl_padding"] = sum(sizes)
    return result


def count_batch_tokens(trainer) -> list[int]:
    """Wraps the trainer's collator to record every batch's size in tokens, padding included."""
    collate, sizes = trainer.data_collator, []

    def counted(rows):
        batch = collate(rows)
        sizes.append(batch["input_ids"].numel())
        return batch

    trainer.data_collator = counted
    return sizes


def throughput(tokens: int, seconds: float) -> dict:
    """Non-pad tokens the Trainer counted (`include_num_input_tokens_seen`) per second of training."""
    return {"train_runtime": seconds, "tokens": tokens, "tokens_per_s": tokens / seconds}


class ProcessCpu:
    """Samples the CPU seconds of this process's descendants (a local Ray's processes) once a
    second, keeping each process's last reading less what it had used before: what Ray's own
    processes cost beside the worker while the block runs."""

    def __init__(self):
        import threading

        self.seen: dict[int, tuple[str, float]] = {}
        self.before: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        import psutil

        for proc in psutil.Process().children(recursive=True):
            try:
                times = proc.cpu_times()
                self.seen[proc.pid] = (" ".join(proc.cmdline())[:80], times.user + times.system)
            except psutil.Error:
                pass

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            self._sample()

    def __enter__(self):
        self._sample()
        self.before = {pid: seconds for pid, (_, seconds) in self.seen.items()}
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()

    @staticmethod
    def role(cmd: str) -> str:
        """`ray::RayTrainWorker...` for actors, the script for Python helpers, else the binary."""
        if "ray::" in cmd:
            return "ray::" + cmd.split("ray::", 1)[1].split()[0]
        parts = cmd.split() or ["?"]
        return next((Path(p).name for p in parts if p.endswith(".py")), Path(parts[0]).name)

    def by_role(self) -> dict[str, float]:
        """CPU seconds per process kind (the Train worker vs each Ray helper), largest first."""
        roles: dict[str, float] = {}
        for pid, (cmd, seconds) in self.seen.items():
            role = self.role(cmd)
            roles[role] = roles.get(role, 0.0) + seconds - self.before.get(pid, 0.0)
        return {k: round(v, 1) for k, v in sorted(roles.items(), key=lambda kv: -kv[1])}


def ray_one_worker(cfg) -> dict:
    """One `medqa train` run on its own local Ray, shut down afterwards so that no plain round
    trains beside an idle Ray."""
    import ray

    from medqa.training.driver import init_ray, run_training

    with ProcessCpu() as cpu:
        init_ray(cfg)
        summary, _ = run_training(cfg)
        ray.shutdown()
    return throughput(summary["metrics"]["num_input_tokens_seen"], summary["train_runtime_s"]) | {
        "wall_time_s": summary["wall_time_s"], "cpu_seconds_by_process": cpu.by_role()}


def memory(model: str) -> dict:
    import gc

    from medqa.config import ModelConfig
    from medqa.modeling.loading import load_model

    out = {}
    for four_bit in (True, False):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        m = load_model(ModelConfig(name=model, load_in_4bit=four_bit))
        out["nf4" if four_bit else "fp32"] = {
            "footprint_mb": round(m.get_memory_footprint() / 2**20, 1),
            "peak_rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1),
        }
        del m
        gc.collect()
    out["ratio_footprint"] = round(out["nf4"]["footprint_mb"] / out["fp32"]["footprint_mb"], 3)
    return out


def interleaved(repeats: int, measure: dict[str, Callable[[], dict]]) -> dict[str, list[dict]]:
    """Each measurement `repeats` times, one of each per round, in the given order and then
    reversed, alternately; results by name, in round order."""
    names = list(measure)
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(measure[name]())
    return runs


def median_ratio(runs: dict[str, list[dict]], name: str, baseline: str) -> dict:
    """Per-round tokens/s ratios of `name` over `baseline`, and their median."""
    ratios = [round(a["tokens_per_s"] / b["tokens_per_s"], 3) for a, b in zip(runs[name], runs[baseline])]
    return {"per_round": ratios, "median": round(statistics.median(ratios), 2)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=36)
    p.add_argument("--rows", type=int, default=160)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--only", choices=["memory", "batching", "ray"], default=None)
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds of each comparison")
    p.add_argument("--strategies", default="padding,group_by_length,packing",
                   help="batching strategies to compare (padding is the baseline and always runs)")
    a = p.parse_args()

    from medqa.config import load_config

    results: dict = {}
    if a.only in (None, "memory"):
        results["memory"] = memory(a.model)  # first: ru_maxrss only grows
    work = Path(tempfile.mkdtemp(prefix="medqa-bench-"))
    if a.only in (None, "batching", "ray"):
        base = prepare(a.rows, work, [
            f"model.name={a.model}", f"data.max_length={a.max_length}",
            # One worker: the plain side is one process, and steps count one process's batches.
            "training.num_workers=1", f"training.batch_size={a.batch_size}", f"training.max_steps={a.steps}",
            "training.warmup_ratio=0", "training.eval_mcq_limit=0", f"training.eval_steps={a.steps}",
            f"training.save_steps={a.steps}", f"training.storage_path={work / 'runs'}"])
        data_dir = work / "data"
    if a.only in (None, "batching"):
        def one_pass(strategy: str) -> dict:
            one_epoch = ["training.max_steps=-1", "training.epochs=1"]
            cfg = load_config(None, base + [f"training.batching={strategy}"] + one_epoch)
            return plain_hf(cfg, data_dir)

        strategies = ["padding"] + [x for x in a.strategies.split(",") if x != "padding"]
        runs = interleaved(a.repeats, {x: partial(one_pass, x) for x in strategies})
        results["batching"] = {"runs": runs} | {
            f"ratio_{x}_vs_padding": median_ratio(runs, x, "padding") for x in strategies[1:]}
    if a.only in (None, "ray"):
        # The worker gets every core, as the plain process does: Ray sets OMP_NUM_THREADS to the
        # worker's CPU count, so a 1-CPU worker would train on one torch thread.
        cfg = load_config(None, base + ["training.batching=padding", f"training.cpus_per_worker={os.cpu_count()}"])
        # Same work on both sides: the Ray worker evaluates and checkpoints at the last step,
        # so the plain Trainer does too (train_runtime covers both).
        runs = interleaved(a.repeats, {"plain": partial(plain_hf, cfg, data_dir, evaluate=True),
                                       "ray_1_worker": partial(ray_one_worker, cfg)})
        results["ray_vs_plain"] = {"runs": runs, "ratio": median_ratio(runs, "ray_1_worker", "plain")}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
