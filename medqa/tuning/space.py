"""The search space and what a trial's parameters mean for the training config (pure).

A trial's parameters are a flat dict (`lora_r`, `learning_rate`,
`lora_dropout`, and `lora_alpha` when it is searched); Tune sees them under
`param_space["train_loop_config"]`. `trial_config` turns them into the full
`Config` a trial trains with, and the best trial's `Config` is what the search
writes as YAML for `medqa train --config`.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from medqa.config import Config, TuningConfig

LOOP_KEY = "train_loop_config"
PARAMS = ("lora_r", "learning_rate", "lora_alpha", "lora_dropout")


def lr_grid(t: TuningConfig, points: int = 3) -> list[float]:
    """The grid's learning rates: `lr_grid` if given, else log-spaced from lr_min to lr_max."""
    if t.lr_grid:
        return list(t.lr_grid)
    step = (math.log(t.lr_max) - math.log(t.lr_min)) / (points - 1)
    return [float(f"{math.exp(math.log(t.lr_min) + i * step):.3g}") for i in range(points)]


def space_spec(t: TuningConfig) -> dict[str, tuple[str, Any]]:
    """Each searched parameter as (kind, values): kind is `choice`, `loguniform` or `grid`."""
    pick = "grid" if t.grid else "choice"
    spec: dict[str, tuple[str, Any]] = {
        "lora_r": (pick, list(t.lora_r)),
        "learning_rate": ("grid", lr_grid(t)) if t.grid else ("loguniform", (t.lr_min, t.lr_max)),
        "lora_dropout": (pick, list(t.lora_dropout)),
    }
    if t.alpha_per_r is None:
        spec["lora_alpha"] = (pick, list(t.lora_alpha))
    return spec


def grid_size(t: TuningConfig) -> int:
    """Trials in grid mode (one pass over every combination)."""
    return math.prod(len(values) for _, values in space_spec(dataclass_grid(t)).values())


def dataclass_grid(t: TuningConfig) -> TuningConfig:
    out = copy.copy(t)
    out.grid = True
    return out


def to_param_space(t: TuningConfig) -> dict[str, dict[str, Any]]:
    """The Tune `param_space`: the spec as Tune domains under `train_loop_config`."""
    from ray import tune

    make = {
        "choice": tune.choice,
        "grid": tune.grid_search,
        "loguniform": lambda bounds: tune.loguniform(*bounds),
    }
    return {LOOP_KEY: {name: make[kind](values) for name, (kind, values) in space_spec(t).items()}}


def resolved_params(params: dict[str, Any], t: TuningConfig) -> dict[str, Any]:
    """The trial's parameters with lora_alpha filled in when it is tied to r."""
    out = {k: params[k] for k in PARAMS if k in params}
    if "lora_alpha" not in out and "lora_r" in out and t.alpha_per_r is not None:
        out["lora_alpha"] = max(1, round(t.alpha_per_r * out["lora_r"]))
    return out


def trial_config(base: Config, params: dict[str, Any]) -> Config:
    """The config one trial trains with.

    Ray Train's HF callback reports on every save, so saving at every
    evaluation makes one Tune iteration per evaluation (ASHA's time unit),
    and `max_t` evaluations fix the number of steps.
    """
    cfg = copy.deepcopy(base)
    p = resolved_params(params, base.tuning)
    cfg.lora.r = int(p.get("lora_r", cfg.lora.r))
    cfg.lora.alpha = int(p.get("lora_alpha", cfg.lora.alpha))
    cfg.lora.dropout = float(p.get("lora_dropout", cfg.lora.dropout))
    cfg.training.learning_rate = float(p.get("learning_rate", cfg.training.learning_rate))
    cfg.training.save_steps = cfg.training.eval_steps
    cfg.training.max_steps = base.tuning.max_t * cfg.training.eval_steps
    cfg.training.resume_from = None
    cfg.training.fail_at_step = -1
    return cfg


def best_config(base: Config, params: dict[str, Any]) -> Config:
    """The winning trial's config for `medqa train`: same values, fresh run, no search state."""
    cfg = trial_config(base, params)
    cfg.training.run_name = None
    cfg.tuning.resume = None
    cfg.tuning.name = None
    return cfg
