"""The search space and the trial/best configs (pure, no Ray cluster)."""

from __future__ import annotations

import pytest

from medqa.config import ConfigError, load_config, save_config
from medqa.tuning.space import (
    LOOP_KEY,
    best_config,
    grid_size,
    lr_grid,
    resolved_params,
    space_spec,
    to_param_space,
    trial_config,
)


def _cfg(*overrides):
    return load_config(None, list(overrides))


def test_default_space_samples_r_lr_dropout_with_alpha_tied():
    spec = space_spec(_cfg().tuning)
    assert spec["lora_r"] == ("choice", [8, 16, 32])
    assert spec["learning_rate"] == ("loguniform", (1e-5, 1e-3))
    assert spec["lora_dropout"][0] == "choice"
    assert "lora_alpha" not in spec  # tied to r


def test_alpha_is_searched_when_not_tied():
    spec = space_spec(_cfg("tuning.alpha_per_r=null", "tuning.lora_alpha=[8, 64]").tuning)
    assert spec["lora_alpha"] == ("choice", [8, 64])


@pytest.mark.parametrize("overrides, expected", [
    ([], [1e-5, 1e-4, 1e-3]),
    (["tuning.lr_grid=[3.0e-2, 1.0e-5]"], [3e-2, 1e-5]),
])
def test_lr_grid(overrides, expected):
    assert lr_grid(_cfg(*overrides).tuning) == pytest.approx(expected)


def test_grid_size_counts_every_combination():
    t = _cfg("tuning.lora_r=[4, 8]", "tuning.lr_grid=[1.0e-3, 1.0e-4, 1.0e-5]", "tuning.lora_dropout=[0.0, 0.1]").tuning
    assert grid_size(t) == 12
    t = _cfg("tuning.lora_r=[4]", "tuning.alpha_per_r=null", "tuning.lora_alpha=[4, 8]",
             "tuning.lora_dropout=[0.0]").tuning
    assert grid_size(t) == 2 * 3


def test_param_space_is_under_train_loop_config():
    from ray import tune  # noqa: F401  (domains only; no cluster)
    from ray.tune.search.sample import Categorical, Float

    space = to_param_space(_cfg().tuning)
    assert set(space) == {LOOP_KEY}
    assert isinstance(space[LOOP_KEY]["lora_r"], Categorical)
    lr = space[LOOP_KEY]["learning_rate"]
    assert isinstance(lr, Float) and (lr.lower, lr.upper) == (1e-5, 1e-3)
    grid = to_param_space(_cfg("tuning.grid=true").tuning)[LOOP_KEY]
    assert grid["lora_r"] == {"grid_search": [8, 16, 32]}


@pytest.mark.parametrize("per_r, r, alpha", [(2.0, 8, 16), (1.0, 32, 32), (0.5, 1, 1)])
def test_tied_alpha(per_r, r, alpha):
    t = _cfg(f"tuning.alpha_per_r={per_r}").tuning
    assert resolved_params({"lora_r": r, "learning_rate": 1e-4}, t)["lora_alpha"] == alpha


def test_trial_config_applies_params_and_reports_every_evaluation():
    base = _cfg("training.eval_steps=5", "training.save_steps=50", "tuning.max_t=3", "training.resume_from=latest")
    cfg = trial_config(base, {"lora_r": 4, "learning_rate": 3e-3, "lora_dropout": 0.1})
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (4, 8, 0.1)
    assert cfg.training.learning_rate == 3e-3
    assert cfg.training.save_steps == 5 and cfg.training.max_steps == 15
    assert cfg.training.resume_from is None
    assert base.lora.r == 16 and base.training.save_steps == 50  # base untouched


def test_best_config_round_trips_as_a_training_config(tmp_path):
    base = _cfg("tuning.name=search-1", "training.run_name=trial-x")
    cfg = best_config(base, {"lora_r": 32, "learning_rate": 2e-4, "lora_dropout": 0.0})
    back = load_config(save_config(cfg, tmp_path / "best.yaml"))
    assert (back.lora.r, back.lora.alpha, back.training.learning_rate) == (32, 64, 2e-4)
    assert back.training.run_name is None and back.tuning.name is None and back.tuning.resume is None


@pytest.mark.parametrize("override, key", [
    ("tuning.metric=accuracy", "tuning.metric"),
    ("tuning.lora_dropout=[1.5]", "tuning.lora_dropout"),
    ("tuning.lr_grid=[-1.0]", "tuning.lr_grid"),
    ("tuning.grace_period=9", "tuning.grace_period"),
    ("tuning.scheduler=hyperband", "tuning.scheduler"),
])
def test_bad_tuning_config_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key):
        _cfg(override)


def test_mode_follows_metric_unless_given():
    assert _cfg().tuning.mode == "min"
    assert _cfg("tuning.metric=eval_accuracy").tuning.mode == "max"
    assert _cfg("tuning.metric=eval_accuracy", "tuning.mode=min").tuning.mode == "min"
