"""A real search on the tiny model: ASHA stops trials early, a Ctrl+C'd search
resumes with `Tuner.restore` and completes, and the winner trains with `medqa train`.

One search serves every test here (trials cost tens of seconds each on 2
cores): it is interrupted after its first trial ends, then resumed through
the CLI exactly as a user would (`medqa tune --resume DIR`).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
from ray.tune import Callback

from medqa.config import load_config
from medqa.tuning.results import read_table

pytestmark = pytest.mark.ray

MAX_T = 2


class InterruptOnce(Callback):
    """A Tune callback that presses Ctrl+C once, after the first trial ends.

    Tune restores callbacks with the experiment, so a marker file keeps the
    resumed search from being interrupted again.
    """

    def __init__(self, marker: str):
        self.marker = marker

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not os.path.exists(self.marker):
            Path(self.marker).write_text("interrupted\n")
            os.kill(os.getpid(), signal.SIGINT)


def _cfg(tmp: Path):
    # A grid with good (3e-2) and hopeless (1e-5) learning rates, good first,
    # so ASHA has something to stop whatever order the trials report in.
    return load_config("jobs/configs/tune_smoke.yaml", [
        f"data.output_dir={tmp}/data", f"training.storage_path={tmp}/runs", "tuning.name=search",
        "tuning.grid=true", "tuning.lr_grid=[3.0e-2, 1.0e-5]", "tuning.lora_r=[4, 8]",
        "tuning.lora_dropout=[0.0]", "tuning.num_samples=1", f"tuning.max_t={MAX_T}",
        "training.eval_steps=1", "training.eval_mcq_limit=0", "tuning.max_concurrent_trials=2",
    ])


@pytest.fixture(scope="module")
def search(ray_session, tmp_path_factory):
    from medqa.tuning.search import run_search

    tmp = tmp_path_factory.mktemp("tune")
    first = run_search(_cfg(tmp), callbacks=[InterruptOnce(str(tmp / "interrupted"))])
    return {"tmp": tmp, "first": first, "dir": Path(first["search_dir"])}


@pytest.fixture(scope="module")
def resumed(search):
    import contextlib
    import io

    from medqa.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["tune", "--resume", str(search["dir"])])
    assert code == 0
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_interrupted_search_is_incomplete(search):
    first = search["first"]
    assert (search["tmp"] / "interrupted").exists()
    assert not first["complete"]
    assert (search["dir"] / "tuner.pkl").exists()


def test_restored_search_completes_every_trial(search, resumed):
    assert resumed["complete"] and resumed["search_dir"] == str(search["dir"])
    rows = read_table(Path(resumed["results"]))
    assert len(rows) == 4 and resumed["errored"] == 0
    assert {r["status"] for r in rows} <= {"COMPLETED", "STOPPED"}
    assert sorted((int(r["lora_r"]), float(r["learning_rate"])) for r in rows) == \
        [(4, 1e-5), (4, 3e-2), (8, 1e-5), (8, 3e-2)]


def test_asha_stops_a_trial_before_max_t(resumed):
    rows = read_table(Path(resumed["results"]))
    stopped = [r for r in rows if r["stopped_early"] == "True"]
    assert stopped and all(int(r["iterations"]) < MAX_T for r in stopped)
    winner = next(r for r in rows if r["trial_id"] == resumed["best_trial"])
    assert winner["status"] == "COMPLETED" and int(winner["iterations"]) == MAX_T
    assert resumed["total_iterations"] < 4 * MAX_T


def test_winner_and_outputs(resumed):
    assert resumed["best_params"]["learning_rate"] == pytest.approx(3e-2)
    rows = read_table(Path(resumed["results"]))
    best = min(float(r["last_eval_loss"]) for r in rows if r["last_eval_loss"])
    assert resumed["best_metric"] == pytest.approx(best)
    for plot in resumed["plots"]:
        assert Path(plot).read_bytes()[:4] == b"\x89PNG"
    assert list(Path(resumed["search_dir"]).glob("*/events.out.tfevents.*"))  # Tune's TensorBoard logs


def test_best_config_trains_with_medqa_train(resumed, capsys):
    from medqa.cli import main

    best = load_config(resumed["best_config"])
    assert (best.lora.r, best.training.learning_rate) == (
        resumed["best_params"]["lora_r"], pytest.approx(resumed["best_params"]["learning_rate"]))
    code = main(["train", "--config", resumed["best_config"], "training.max_steps=2", "training.eval_steps=1"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert Path(summary["checkpoint"], "adapter_config.json").exists()
    assert "eval_loss" in summary["metrics"]
