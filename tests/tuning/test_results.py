"""Trials table, winner, plots and concurrency (pure, no Ray cluster)."""

from __future__ import annotations

import pytest

from medqa.config import load_config
from medqa.tuning.results import (
    TrialOutcome,
    pick_best,
    plot_curves,
    plot_params,
    read_table,
    total_iterations,
    trial_rows,
    write_table,
)
from medqa.tuning.search import concurrency


def _outcome(trial_id, lr, losses, error=None, r=8):
    history = [{"training_iteration": i + 1, "eval_loss": v} for i, v in enumerate(losses)]
    return TrialOutcome(trial_id, {"lora_r": r, "learning_rate": lr, "lora_alpha": 2 * r, "lora_dropout": 0.0},
                        history, error)


OUTCOMES = [
    _outcome("t0", 1e-3, [2.0, 1.5, 1.2, 1.1]),
    _outcome("t1", 1e-5, [2.5]),                 # stopped at rung 1
    _outcome("t2", 3e-4, [2.1, 1.4]),            # stopped at rung 2
    _outcome("t3", 1e-2, [2.0, float("nan")], error="RuntimeError: diverged"),
    _outcome("t4", 5e-4, [1.9, 1.3, 1.0, 1.05], r=16),
]


def test_rows_hold_config_best_last_and_iterations():
    rows = {r["trial_id"]: r for r in trial_rows(OUTCOMES, "eval_loss", "min", max_t=4)}
    assert rows["t4"]["best_eval_loss"] == 1.0 and rows["t4"]["last_eval_loss"] == 1.05
    assert rows["t4"]["lora_r"] == 16 and rows["t4"]["learning_rate"] == 5e-4
    assert [rows[t]["iterations"] for t in ("t0", "t1", "t2")] == [4, 1, 2]
    assert [rows[t]["stopped_early"] for t in ("t0", "t1", "t2", "t3")] == [False, True, True, False]
    assert rows["t3"]["status"] == "ERROR" and rows["t3"]["last_eval_loss"] == 2.0  # NaN ignored
    assert total_iterations(rows.values()) == 4 + 1 + 2 + 2 + 4


@pytest.mark.parametrize("mode, expected", [
    ("min", "t4"),   # 1.05 beats t0's 1.1; errored t3 excluded
    ("max", "t1"),
])
def test_pick_best_uses_last_metric_and_skips_errors(mode, expected):
    rows = trial_rows(OUTCOMES, "eval_loss", mode, max_t=4)
    assert pick_best(rows, "eval_loss", mode)["trial_id"] == expected


def test_interrupted_trials_are_unfinished_not_stopped_and_never_win():
    running = _outcome("r", 1e-3, [0.5])
    running.tune_status = "RUNNING"
    rows = trial_rows([running, _outcome("done", 1e-3, [1.0, 0.9])], "eval_loss", "min", max_t=2)
    assert [(r["status"], r["stopped_early"]) for r in rows] == [("COMPLETED", False), ("UNFINISHED", False)]
    assert pick_best(rows, "eval_loss", "min")["trial_id"] == "done"


def test_a_rerun_trial_counts_its_last_attempt_only():
    rerun = _outcome("r", 1e-3, [2.0, 1.0])
    rerun.history += [{"training_iteration": 1, "eval_loss": 1.8}]  # restored, started again
    (row,) = trial_rows([rerun], "eval_loss", "min", max_t=2)
    assert (row["iterations"], row["best_eval_loss"], row["last_eval_loss"]) == (1, 1.8, 1.8)


def test_pick_best_tie_goes_to_the_longer_trial():
    rows = trial_rows([_outcome("a", 1e-4, [1.0]), _outcome("b", 1e-4, [1.2, 1.0])], "eval_loss", "min", 2)
    assert pick_best(rows, "eval_loss", "min")["trial_id"] == "b"


def test_pick_best_without_metric_is_a_clear_error():
    rows = trial_rows([_outcome("a", 1e-4, [], error="boom")], "eval_loss", "min", 2)
    with pytest.raises(ValueError, match="no trial reported eval_loss"):
        pick_best(rows, "eval_loss", "min")


def test_table_round_trips(tmp_path):
    rows = trial_rows(OUTCOMES, "eval_loss", "min", max_t=4)
    back = read_table(write_table(rows, tmp_path / "trials.csv"))
    assert [r["trial_id"] for r in back] == ["t0", "t1", "t2", "t3", "t4"]
    assert {"lora_r", "learning_rate", "lora_alpha", "lora_dropout", "iterations",
            "best_eval_loss", "last_eval_loss", "stopped_early"} <= set(back[0])


def test_plots_are_written(tmp_path):
    rows = trial_rows(OUTCOMES, "eval_loss", "min", max_t=4)
    for path in (plot_curves(OUTCOMES, "eval_loss", 4, tmp_path / "curves.png"),
                 plot_params(rows, "eval_loss", tmp_path / "params.png")):
        assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 5000


@pytest.mark.parametrize("overrides, cpus, gpus, expected", [
    (["training.num_workers=1"], 4, 0, 2),                      # 1.5 CPUs per trial
    (["training.num_workers=2"], 4, 0, 1),                      # 2.5 per trial
    (["training.num_workers=2"], 2, 0, 1),                      # never below one
    (["training.num_workers=1", "tuning.max_concurrent_trials=3"], 4, 0, 3),
    (["training.num_workers=1", "training.use_gpu=true"], 32, 4, 4),
    (["training.num_workers=2", "training.use_gpu=true"], 32, 4, 2),
    (["training.num_workers=1", "tuning.trial_cpus=0"], 4, 0, 4),
])
def test_concurrency_fits_the_cluster(overrides, cpus, gpus, expected):
    cfg = load_config(None, overrides)
    assert concurrency(cfg.tuning, cfg.training, cpus, gpus) == expected


@pytest.mark.parametrize("searcher", ["optuna", "hyperopt"])
def test_model_based_searcher_without_its_package_is_a_clear_error(searcher):
    import importlib.util

    from medqa.tuning.search import _search_alg

    if importlib.util.find_spec(searcher):
        pytest.skip(f"{searcher} is installed here; the error path needs it absent")
    cfg = load_config(None, [f"tuning.searcher={searcher}"])
    with pytest.raises(ValueError, match=f"pip install {searcher}"):
        _search_alg(cfg.tuning, seed=0, max_concurrent=2)


def test_grid_needs_the_random_searcher():
    from medqa.tuning.search import _search_alg

    cfg = load_config(None, ["tuning.searcher=optuna", "tuning.grid=true"])
    with pytest.raises(ValueError, match="tuning.grid needs tuning.searcher=random"):
        _search_alg(cfg.tuning, seed=0, max_concurrent=2)
