"""benchmarks/gpu_smoke.py with --cpu and the tiny model: every stage runs in the session's Ray
and its figures are the real ones (steps reached, finite losses, both eval workers used,
50 answered requests over HTTP behind the API key)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

STEPS, EVAL_LIMIT, REQUESTS = 2, 8, 50

pytestmark = [pytest.mark.ray, pytest.mark.slow]
if importlib.util.find_spec("pytest_timeout"):  # the marker exists only with the plugin (--strict-markers)
    pytestmark.append(pytest.mark.timeout(600))


@pytest.fixture(scope="module")
def smoke():
    return load_benchmark("gpu_smoke")


@pytest.fixture(scope="module")
def figures(ray_session, shared_data, smoke, tmp_path_factory) -> dict:
    argv = ["--cpu", "--model", "tiny-random", "--data", str(shared_data / "medmcqa_dev_public.jsonl"),
            "--steps", str(STEPS), "--eval-limit", str(EVAL_LIMIT), "--max-length", "128",
            "--requests", str(REQUESTS), "--workdir", str(tmp_path_factory.mktemp("gpu-smoke"))]
    figures = smoke.main(argv)
    print(smoke.json_line(figures))  # shown with a failing test's captured output
    return figures


def test_every_stage_ran_without_error(figures, ray_session):
    assert figures["errors"] == {}
    assert {"ddp", "zero3", "eval", "serve"} <= set(figures)
    assert ray_session.is_initialized()  # the session's Ray was reused, not shut down


@pytest.mark.parametrize("strategy", ["ddp", "zero3"])
def test_both_strategies_reach_the_steps_with_finite_losses(figures, strategy):
    run = figures[strategy]
    assert run["steps"] == run["max_steps"] == STEPS
    assert len(run["losses"]) == STEPS  # logging_steps is 1: one loss per step
    assert all(math.isfinite(loss) and loss > 0 for loss in run["losses"]), run["losses"]
    assert math.isfinite(run["eval_loss"])
    assert 0.0 <= run["eval_accuracy"] <= 1.0
    assert run["train_s"] > 0 and Path(run["checkpoint"], "adapter_model.safetensors").exists()
    assert figures["workers"] == 2


def test_zero3_resumes_after_its_worker_failure_and_saves_a_whole_adapter(figures):
    from safetensors.torch import load_file

    run = figures["zero3"]
    assert run["resumed_from_step"] == STEPS // 2  # the failure at the next step resumed from here
    assert figures["ddp"]["resumed_from_step"] is None
    checkpoint = Path(run["checkpoint"])
    assert any(checkpoint.glob("global_step*/*optim_states.pt"))  # ZeRO's partitioned optimizer state
    weights = load_file(str(checkpoint / "adapter_model.safetensors"))
    assert weights and all(t.numel() > 0 for t in weights.values())  # gathered whole, not empty shards


def test_eval_scores_the_expected_rows_on_two_workers(figures):
    ev = figures["eval"]
    assert ev["rows"] == ev["rows_expected"] == EVAL_LIMIT
    assert ev["workers"] == ev["workers_used"] == 2
    assert 0.0 <= ev["accuracy"] <= 1.0 and ev["rows_per_s"] > 0
    assert ev["adapter"] == figures["ddp"]["checkpoint"]  # the DDP adapter, not the bare base


def test_serve_answers_every_request_behind_the_key(figures, smoke):
    sv = figures["serve"]
    assert sv["requests"] == REQUESTS
    assert sv["status_counts"] == {"200": REQUESTS}
    assert sv["unauthenticated_status"] == 401
    assert 0 < sv["p50_ms"] <= sv["p95_ms"]
    # The app is gone afterwards (Serve itself too, unless another test's app keeps it running).
    from medqa.runtime import private

    client = private.serve_client()
    if client is not None:
        from ray import serve

        assert smoke.APP not in serve.status().applications


def test_the_json_line_parses_back_to_the_figures(figures, smoke):
    line = smoke.json_line(figures)
    assert "\n" not in line
    assert json.loads(line) == figures
    assert figures["device"] == "cpu" and figures["gpu_count"] == 0
    assert all(figures["versions"][name] for name in smoke.VERSIONED)
