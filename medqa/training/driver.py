"""The driver side of training: the prepared data, the `TorchTrainer`, the run summary.

`fit(cfg)` is what `medqa train` and `jobs/train.py` call. It reads the token
columns of the Ray Data pipeline's parquet output (running the pipeline first
when the prepared data is absent), packs them when `training.batching=packing`,
puts the tables in Ray's object store once, and starts `train_loop_per_worker`
on `training.num_workers` workers, which read them from there.

Why not Ray Data shards: the prepared rows are small (the tokens of a few
hundred thousand questions at most) and the pipeline has done the work on
them. Streaming them through Ray Data a second time kept a split coordinator,
a stats actor and a pool of idle workers busy beside every training step,
which cost Ray Train a tenth of its speed on 2 cores (benchmarks/RESULTS.md).
The object store reaches every node, as Ray Data's blocks would.

Runs live in `<storage_path>/<run_name>/`: Ray's checkpoints
(`checkpoint_*/checkpoint/`: adapter, tokenizer, resolved config, trainer
state), TensorBoard events (`tensorboard/`) and `progress.csv`.
"""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from medqa.config import Config
from medqa.reporting import write_csv
from medqa.training.batching import pack_table, total_steps
from medqa.training.loop import LoopConfig, train_loop_per_worker

TOKEN_COLUMNS = ["input_ids", "labels", "length"]
RECORD_COLUMNS = ["id", "question", "options", "answer_index", "explanation", "subject", "topic"]
FAIL_MARKER = ".medqa-injected-failure"


# ---------------------------------------------------------------- pure helpers


def is_uri(path: str) -> bool:
    return "://" in path


def storage_root(cfg: Config) -> str:
    """Ray needs an absolute local path (or a URI)."""
    path = cfg.training.storage_path
    return path if is_uri(path) else str(Path(path).expanduser().resolve())


def new_run_name() -> str:
    return time.strftime("medqa-train-%Y%m%d-%H%M%S")


def latest_run(storage: str) -> Optional[str]:
    """The most recently modified run folder under `storage` that holds a checkpoint."""
    runs = [p for p in Path(storage).glob("*") if p.is_dir() and any(p.glob("checkpoint_*"))]
    return max(runs, key=lambda p: p.stat().st_mtime).name if runs else None


def resolve_run(cfg: Config) -> tuple[str, Optional[str]]:
    """(run name, checkpoint directory to resume from) for `training.resume_from`.

    `latest` reuses a run's name: Ray Train then restores that run's checkpoint
    list and `ray.train.get_checkpoint()` hands the latest one to the workers.
    A path resumes a new run from that checkpoint (a Ray `checkpoint_*` folder
    or the HF `checkpoint` folder inside it).
    """
    t = cfg.training
    if t.resume_from is None:
        return t.run_name or new_run_name(), None
    if t.resume_from == "latest":
        name = t.run_name or latest_run(storage_root(cfg))
        if name is None:
            raise FileNotFoundError(f"training.resume_from=latest: no run with a checkpoint under {storage_root(cfg)}")
        return name, None
    path = Path(t.resume_from).expanduser().resolve()
    if (path / "checkpoint").is_dir():
        path = path / "checkpoint"
    if not (path / "trainer_state.json").exists():
        raise FileNotFoundError(f"training.resume_from: {path} is not a training checkpoint (no trainer_state.json)")
    return t.run_name or new_run_name(), str(path)


def write_progress_csv(log_history: list[dict], path: Path) -> Path:
    """The trainer's log history as CSV (one row per log event), beside Ray's results."""
    # Log events carry different keys (train, eval, the summary): sorted, the columns do not
    # depend on which kind came first.
    return write_csv(log_history, path, fieldnames=sorted({k for row in log_history for k in row}))


# ---------------------------------------------------------------- data


def prepared_data_dir(cfg: Config) -> Path:
    """The pipeline's output folder; runs the Ray Data pipeline first if it is absent or the
    pipeline made it with other settings (another max_length, tokenizer, source file...).
    A folder without the pipeline's fingerprint (written by hand) is used as it is."""
    from medqa.console import err
    from medqa.data.preprocess import data_fingerprint, prepared_fingerprint, preprocess_on_ray

    out = Path(cfg.data.output_dir).expanduser().resolve()
    if not any((out / "train").glob("*.parquet")):
        err.print(f"[bold]No prepared data in {out}: running the data pipeline first[/]")
        preprocess_on_ray(cfg)
    elif prepared_fingerprint(out) not in (None, data_fingerprint(cfg)):
        err.print(f"[bold]Prepared data in {out} was made with other data settings: preparing it again[/]")
        preprocess_on_ray(cfg)
    return out


def load_tables(cfg: Config, data_dir: Path) -> dict:
    """The token columns of both splits as Arrow tables, train packed when `batching=packing`."""
    import pyarrow.parquet as pq

    tables = {split: pq.read_table(str(data_dir / split), columns=TOKEN_COLUMNS) for split in ("train", "validation")}
    if cfg.training.batching == "packing":
        tables["train"] = pack_table(tables["train"], cfg.data.max_length)
    return tables


def share(tables: dict) -> dict:
    """The tables in Ray's object store: the workers (and Tune's trials) read one copy."""
    import ray

    return {split: ray.put(table) for split, table in tables.items()}


def mcq_records(data_dir: Path, limit: int) -> list[dict]:
    """The first `limit` validation questions, as `MCQRecord` dicts, for `eval_accuracy`."""
    if limit <= 0:
        return []
    import pyarrow.parquet as pq

    table = pq.read_table(str(data_dir / "validation"), columns=RECORD_COLUMNS)
    rows = table.slice(0, limit).to_pylist()
    return [dict(r, options=list(r["options"])) for r in rows]


# ---------------------------------------------------------------- trainer


def build_trainer(cfg: Config, loop: LoopConfig, run_name: str, callbacks: Sequence = ()):
    """The TorchTrainer for `cfg`; `callbacks` join its RunConfig (Tune adds its reporter here).
    The workers get `loop` bound to their function, not as Ray's `train_loop_config` dict
    (which Ray also copies into its dashboard state)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    t = cfg.training
    return TorchTrainer(
        functools.partial(train_loop_per_worker, loop),
        torch_config=TorchConfig(backend="nccl" if t.use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=t.num_workers, use_gpu=t.use_gpu,
                                     resources_per_worker={"CPU": t.cpus_per_worker}),
        run_config=RunConfig(
            name=run_name,
            storage_path=storage_root(cfg),
            checkpoint_config=CheckpointConfig(num_to_keep=t.keep_checkpoints,
                                               checkpoint_score_attribute="eval_loss",
                                               checkpoint_score_order="min"),
            failure_config=FailureConfig(max_failures=t.max_failures),
            callbacks=list(callbacks),
        ),
    )


def make_loop_config(cfg: Config, run_name: str, data: dict, rows: int, resume_path: Optional[str],
                     records: list[dict]) -> LoopConfig:
    """What every worker receives: the config, the data's object refs (`share`), the schedule."""
    from medqa.training.deepspeed import deepspeed_config

    run_dir = Path(storage_root(cfg)) / run_name
    local = not is_uri(cfg.training.storage_path)
    return LoopConfig(
        cfg=cfg,
        data=data,
        max_steps=total_steps(rows, cfg.training),
        resume_path=resume_path,
        mcq_records=tuple(records),
        fail_marker=str(run_dir / FAIL_MARKER) if local else None,
        logging_dir=str(run_dir / "tensorboard") if local else None,
        deepspeed_config=deepspeed_config(cfg) if cfg.training.strategy == "deepspeed" else None,
    )


def fit(cfg: Config) -> dict[str, Any]:
    """Train and return the run summary (`checkpoint`: the final adapter directory, `metrics`)."""
    return run_training(cfg)[0]


def run_training(cfg: Config) -> tuple[dict[str, Any], Any]:
    """(summary, Ray `Result`); the result's `return_value` holds rank 0's probe logits."""
    data_dir = prepared_data_dir(cfg)
    run_name, resume_path = resolve_run(cfg)
    tables = load_tables(cfg, data_dir)
    records = mcq_records(data_dir, cfg.training.eval_mcq_limit)
    loop = make_loop_config(cfg, run_name, share(tables), tables["train"].num_rows, resume_path, records)
    started = time.perf_counter()
    result = build_trainer(cfg, loop, run_name).fit()
    summary = summarise(result, loop, time.perf_counter() - started)
    returned = result.return_value or {}
    summary["resumed_from_step"] = returned.get("resumed_from_step")
    summary["train_runtime_s"] = returned.get("train_metrics", {}).get("train_runtime")
    summary["calibration"] = save_calibration(returned.get("calibration"), Path(summary["checkpoint"]))
    return summary, result


def save_calibration(fitted: Optional[dict], adapter_dir: Path) -> Optional[str]:
    """The workers' calibration as `calibration.json` in the final adapter directory, where
    `medqa serve --adapter` and `medqa evaluate --calibration` find it."""
    if not fitted:
        return None
    from medqa.evaluation.calibrate import ARTEFACT_NAME
    from medqa.evaluation.calibration import Calibration

    return str(Calibration.from_dict(fitted).save(adapter_dir / ARTEFACT_NAME))


def summarise(result, loop: LoopConfig, seconds: float) -> dict[str, Any]:
    if result.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    adapter_dir = local_adapter_dir(result.checkpoint, Path(result.path) if not is_uri(result.path) else None)
    state = json.loads((adapter_dir / "trainer_state.json").read_text())
    csv_path = (write_progress_csv(state["log_history"], Path(result.path) / "progress.csv")
                if not is_uri(result.path) else None)
    best = [str(Path(c.path) / "checkpoint") for c, _ in (result.best_checkpoints or [])]
    return {
        "checkpoint": str(adapter_dir),
        "run_dir": str(result.path),
        "metrics": final_metrics(state["log_history"]),
        "global_step": state["global_step"],
        "max_steps": loop.max_steps,
        "best_checkpoints": best,
        "progress_csv": str(csv_path) if csv_path else None,
        "wall_time_s": round(seconds, 1),
    }


def local_adapter_dir(checkpoint, run_dir: Optional[Path]) -> Path:
    """The HF checkpoint folder inside Ray's checkpoint, downloaded when storage is remote."""
    if run_dir is not None:
        return Path(checkpoint.path) / "checkpoint"
    target = Path("runs") / "downloaded" / Path(checkpoint.path).name
    checkpoint.to_directory(str(target))
    return target.resolve() / "checkpoint"


def final_metrics(log_history: list[dict]) -> dict[str, float]:
    """The latest value of every logged metric (train loss, eval loss/accuracy, ...)."""
    metrics: dict[str, float] = {}
    for row in log_history:
        metrics.update({k: v for k, v in row.items() if isinstance(v, (int, float))})
    first_loss = next((row["loss"] for row in log_history if "loss" in row), None)
    if first_loss is not None:
        metrics["first_loss"] = first_loss
    return metrics


def init_ray(cfg: Config) -> None:
    """Connect to `RAY_ADDRESS` (e.g. under `ray job submit`) or start a local Ray sized for the run."""
    from medqa import runtime

    needed = cfg.training.num_workers * cfg.training.cpus_per_worker + 1
    runtime.connect(num_cpus=max(os.cpu_count() or 1, needed))
