"""The Ray Tune shell: a `Tuner` over Ray Train trials with ASHA early stopping.

Ray Train V2 no longer accepts a `TorchTrainer` as a Tune trainable; each
trial is a function (`run_trial`) that builds the training engineer's
`TorchTrainer` with the trial's config and fits it. `TuneReportCallback`
forwards every worker report (one per evaluation: trials save at every
evaluation) to Tune, so ASHA's time unit is one evaluation. When ASHA stops
a trial, Tune ends the trial actor, which takes the Train controller and
workers with it; `janitor` then frees their placement group.

A search lives in `<training.storage_path>/<tuning.name>/`: Tune's
experiment state (what `Tuner.restore` resumes), one folder per trial with
Tune's TensorBoard/CSV/JSON logs, `trial_runs/<trial_id>/` (each trial's Ray
Train run: checkpoints, HF TensorBoard), `search_config.yaml`, and the
outputs: `trials.csv`, `best_config.yaml`, `plots/*.png`, `summary.json`.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Optional, Sequence

from medqa.config import Config, TrainingConfig, TuningConfig, from_dict, load_config, save_config, to_dict
from medqa.runtime import private
from medqa.tuning import results as res
from medqa.tuning.space import LOOP_KEY, best_config, grid_size, resolved_params, to_param_space, trial_config

SEARCH_CONFIG = "search_config.yaml"
TRIAL_RUNS = "trial_runs"


# ---------------------------------------------------------------- pure helpers


def new_search_name() -> str:
    return time.strftime("medqa-tune-%Y%m%d-%H%M%S")


def concurrency(t: TuningConfig, tr: TrainingConfig, cpus: float, gpus: float) -> int:
    """Trials that fit at once: each reserves `trial_cpus` plus its Train workers' resources.

    An explicit `max_concurrent_trials` wins (an autoscaling cluster may grow
    to fit it); otherwise the current cluster decides, and at least one runs.
    """
    if t.max_concurrent_trials:
        return t.max_concurrent_trials
    per_trial = t.trial_cpus + tr.num_workers * tr.cpus_per_worker
    fit = math.floor(cpus / per_trial + 1e-9)
    if tr.use_gpu:
        fit = min(fit, math.floor(gpus / tr.num_workers + 1e-9))
    return max(1, fit)


# ---------------------------------------------------------------- the trial


def run_trial(config: dict, base: dict, data: dict, rows: int, records: list, trial_root: str,
              search_id: str) -> None:
    """One Tune trial: the training engineer's `TorchTrainer` on this trial's config."""
    from ray import tune
    from ray.tune.integration.ray_train import TuneReportCallback

    from medqa.runtime.janitor import RecordPlacementGroup
    from medqa.training.driver import build_trainer, make_loop_config

    cfg = trial_config(from_dict(base), config[LOOP_KEY])
    cfg.training.storage_path = trial_root
    # A fresh Train run per attempt: V2 would otherwise resume a restored
    # trial's old run from its checkpoint while Tune counts iterations from 1.
    run_name = f"{tune.get_context().get_trial_id()}-{time.strftime('%Y%m%d-%H%M%S')}"
    loop = make_loop_config(cfg, run_name, data, rows, None, records)
    trainer = build_trainer(cfg, loop, run_name,
                            callbacks=[TuneReportCallback(), RecordPlacementGroup(search_id)])
    trainer.fit()


# ---------------------------------------------------------------- the Tuner


def _scheduler(t: TuningConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if t.scheduler == "fifo":
        return FIFOScheduler()
    return ASHAScheduler(time_attr="training_iteration", max_t=t.max_t, grace_period=t.grace_period,
                         reduction_factor=t.reduction_factor)


def _search_alg(t: TuningConfig, seed: int, max_concurrent: int):
    from ray.tune.search import BasicVariantGenerator, ConcurrencyLimiter

    if t.searcher == "random":
        return BasicVariantGenerator(random_state=seed, max_concurrent=max_concurrent)
    if t.grid:
        raise ValueError(f"tuning.grid needs tuning.searcher=random, not {t.searcher}")
    try:
        if t.searcher == "optuna":
            from ray.tune.search.optuna import OptunaSearch

            searcher = OptunaSearch(seed=seed)
        else:
            from ray.tune.search.hyperopt import HyperOptSearch

            searcher = HyperOptSearch(random_state_seed=seed)
    except (ImportError, AssertionError) as err:
        raise ValueError(f"tuning.searcher={t.searcher} needs the `{t.searcher}` package "
                         f"(pip install {t.searcher}): {err}") from None
    return ConcurrencyLimiter(searcher, max_concurrent=max_concurrent)


def _callbacks(cfg: Config, search_id: str, extra: Sequence[Any]) -> list:
    from medqa.runtime.janitor import ReleaseOrphanedPlacementGroups

    callbacks: list = [ReleaseOrphanedPlacementGroups(search_id)]
    if cfg.wandb.enabled and cfg.wandb.mode != "disabled":
        from ray.air.integrations.wandb import WandbLoggerCallback

        callbacks.append(WandbLoggerCallback(project=cfg.wandb.project, mode=cfg.wandb.mode,
                                             group=search_id))
    return callbacks + list(extra)


def _trainable(cfg: Config, search_dir: str, search_id: str):
    """The trial function with its data bound, reserving `trial_cpus` for the trial itself."""
    from ray import tune

    from medqa.training.driver import load_tables, mcq_records, prepared_data_dir, share

    data_dir = prepared_data_dir(cfg)
    tables = load_tables(cfg, data_dir)
    records = mcq_records(data_dir, cfg.training.eval_mcq_limit)
    bound = tune.with_parameters(
        run_trial, base=to_dict(cfg), data=share(tables), rows=tables["train"].num_rows, records=records,
        trial_root=f"{search_dir}/{TRIAL_RUNS}", search_id=search_id,
    )
    return tune.with_resources(bound, {"CPU": cfg.tuning.trial_cpus})


def build_tuner(cfg: Config, search_dir: str, name: str, callbacks: Sequence[Any] = ()):
    import ray
    from ray import tune

    t = cfg.tuning
    resources = ray.cluster_resources()
    max_concurrent = concurrency(t, cfg.training, resources.get("CPU", 0), resources.get("GPU", 0))
    return tune.Tuner(
        _trainable(cfg, search_dir, name),
        param_space=to_param_space(t),
        tune_config=tune.TuneConfig(
            metric=t.metric, mode=t.mode, num_samples=t.num_samples, scheduler=_scheduler(t),
            search_alg=_search_alg(t, cfg.seed, max_concurrent), reuse_actors=False,
        ),
        run_config=tune.RunConfig(name=name, storage_path=str(Path(search_dir).parent),
                                  callbacks=_callbacks(cfg, name, callbacks), verbose=1),
    )


def restore_tuner(cfg: Config, search_dir: str):
    from ray import tune

    if not tune.Tuner.can_restore(search_dir):
        raise FileNotFoundError(f"tuning.resume: {search_dir} holds no Tune experiment to restore")
    return tune.Tuner.restore(search_dir, trainable=_trainable(cfg, search_dir, Path(search_dir).name),
                              resume_unfinished=True, resume_errored=True)


# ---------------------------------------------------------------- entry point


def search_dir_of(cfg: Config) -> tuple[str, str]:
    """(search directory, search name) for a new search or a resumed one."""
    from medqa.training.driver import storage_root

    if cfg.tuning.resume:
        path = Path(cfg.tuning.resume).expanduser().resolve()
        return str(path), path.name
    name = cfg.tuning.name or new_search_name()
    return f"{storage_root(cfg)}/{name}", name


def resume_config(search_dir: str, overrides: Optional[list[str]] = None) -> Config:
    """The config a search started with (saved beside it), plus any overrides."""
    saved = Path(search_dir) / SEARCH_CONFIG
    if not saved.exists():
        raise FileNotFoundError(f"tuning.resume: {saved} is missing; is {search_dir} a medqa search?")
    return load_config(saved, [*(overrides or []), f"tuning.resume={search_dir}"])


def run_search(cfg: Config, callbacks: Sequence[Any] = ()) -> dict[str, Any]:
    """Run (or resume) the search, write its outputs and return the summary."""
    search_dir, name = search_dir_of(cfg)
    if cfg.tuning.resume:
        tuner = restore_tuner(cfg, search_dir)
    else:
        Path(search_dir).mkdir(parents=True, exist_ok=True)
        save_config(cfg, Path(search_dir) / SEARCH_CONFIG)
        tuner = build_tuner(cfg, search_dir, name, callbacks)
    started = time.perf_counter()
    grid = tuner.fit()
    from medqa.runtime.janitor import release_orphans

    # An interrupted search ends without Tune's end-of-experiment callbacks.
    release_orphans(name, wait_s=15.0)
    summary = write_outputs(cfg, collect(grid, cfg.tuning), Path(search_dir))
    summary["wall_time_s"] = round(time.perf_counter() - started, 1)
    (Path(search_dir) / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def collect(grid, t: TuningConfig) -> list[res.TrialOutcome]:
    """Plain `TrialOutcome`s from Tune's `ResultGrid`."""
    statuses = private.tune_saved_statuses(Path(grid.experiment_path))
    outcomes = []
    for result in grid:
        df = result.metrics_dataframe
        keep = [c for c in ("training_iteration", "eval_loss", "eval_accuracy", "loss", "step")
                if df is not None and c in df.columns]
        trial_id = (result.metrics or {}).get("trial_id") or Path(result.path).name
        outcomes.append(res.TrialOutcome(
            trial_id=trial_id,
            params=resolved_params(result.config[LOOP_KEY], t),
            history=df[keep].to_dict("records") if keep else [],
            error=str(result.error).splitlines()[0][:300] if result.error else None,
            path=result.path,
            tune_status=statuses.get(trial_id),
        ))
    return outcomes


def expected_trials(t: TuningConfig) -> int:
    return (grid_size(t) if t.grid else 1) * t.num_samples


def write_outputs(cfg: Config, outcomes: list[res.TrialOutcome], search_dir: Path) -> dict[str, Any]:
    """Trials table, best config YAML, plots; returns the summary (JSON-able)."""
    t = cfg.tuning
    rows = res.trial_rows(outcomes, t.metric, t.mode, t.max_t)
    table = res.write_table(rows, search_dir / "trials.csv")
    best = res.pick_best(rows, t.metric, t.mode)
    winner = next(o for o in outcomes if o.trial_id == best["trial_id"])
    best_yaml = save_config(best_config(cfg, winner.params), search_dir / "best_config.yaml")
    plots = [
        res.plot_curves(outcomes, t.metric, t.max_t, search_dir / "plots" / f"{t.metric}_per_iteration.png"),
        res.plot_params(rows, t.metric, search_dir / "plots" / f"{t.metric}_vs_lr_and_rank.png"),
    ]
    return {
        "results": str(table),
        "best_config": str(best_yaml),
        "best_metric": best[f"last_{t.metric}"],
        "metric": t.metric,
        "mode": t.mode,
        "best_trial": best["trial_id"],
        "best_params": winner.params,
        "trials": len(rows),
        "complete": len(rows) == expected_trials(t) and all(r["status"] != "UNFINISHED" for r in rows),
        "errored": sum(1 for r in rows if r["error"]),
        "stopped_early": sum(1 for r in rows if r["stopped_early"]),
        "total_iterations": res.total_iterations(rows),
        "max_t": t.max_t,
        "search_dir": str(search_dir),
        "tensorboard": f"tensorboard --logdir {search_dir}",
        "plots": [str(p) for p in plots],
    }
