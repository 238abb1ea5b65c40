"""The Ray Data scorer (`medqa.evaluation.distributed`) against the in-process one: the same
predictions and probabilities from 2 replicas that both score, the same `medqa evaluate`
predictions with `workers=2` as with 0, and `jobs/evaluate.py` on its smoke config."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from dataclasses import replace
from pathlib import Path

import pytest

from medqa.evaluation.command import load_eval_records, run_evaluation
from medqa.evaluation.distributed import RayScorer, ray_scorer
from medqa.evaluation.runner import local_scorer

REPO = Path(__file__).resolve().parents[2]
SMOKE_CONFIG = REPO / "jobs" / "configs" / "evaluate_smoke.yaml"
N, WORKERS, BATCH = 16, 2, 4  # batch 4: 4 blocks of 4 rows, two for each replica

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def sample_records():
    records, _ = load_eval_records("sample", N)
    assert len(records) == N
    return records


@pytest.fixture(scope="module")
def local_scores(sample_records, tiny_model_path):
    from medqa.modeling.loading import load_for_scoring

    model, tokenizer, _ = load_for_scoring("tiny-random", None, False)
    return local_scorer(model, tokenizer, "letter", BATCH)(sample_records)


@pytest.fixture(scope="module")
def pooled(ray_session, sample_records, tiny_model_path):
    """(scores, workers_used, scoring_s, owned Ray) of one pool run over the sample rows."""
    with ray_scorer("tiny-random", None, False, "letter", BATCH, WORKERS) as scorer:
        scores = scorer(sample_records)
        owned = scorer._owns_ray
    return scores, scorer.workers_used, scorer.scoring_s, owned


def test_two_replicas_give_the_local_scores_in_input_order(pooled, local_scores):
    scores, _, _, _ = pooled
    assert len(scores) == len(local_scores) == N
    assert [s.predicted_index for s in scores] == [s.predicted_index for s in local_scores]
    for remote, local in zip(scores, local_scores):
        assert remote.probabilities == pytest.approx(local.probabilities, abs=1e-6)
        assert remote.loglikelihoods == pytest.approx(local.loglikelihoods, abs=1e-4)
        assert (remote.method, remote.continuation_bytes) == (local.method, local.continuation_bytes)
    # Not a constant answer, else the order check above proves little.
    assert len({tuple(round(p, 4) for p in s.probabilities) for s in scores}) > 1


def test_both_replicas_scored_and_the_session_ray_is_left_running(pooled, ray_session):
    _, workers_used, scoring_s, owned = pooled
    assert workers_used == WORKERS
    assert scoring_s > 0
    assert not owned and ray_session.is_initialized()


def test_an_empty_call_scores_nothing_without_a_pool(ray_session):
    with ray_scorer("tiny-random", None, False, "letter", BATCH, WORKERS) as scorer:
        assert scorer([]) == [] and scorer.workers_used == 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(workers=0), "workers must be an integer >= 1"),
    (dict(workers=1.5), "workers must be an integer >= 1"),
    (dict(gpus_per_worker=-0.5), "gpus_per_worker must be a number >= 0"),
    (dict(gpus_per_worker=float("nan")), "gpus_per_worker must be a number >= 0"),
    (dict(gpus_per_worker=1.5), "whole number of GPUs"),
    (dict(method="logits"), "unknown scoring method"),
    (dict(batch_size=0), "batch_size must be an integer >= 1"),
])
def test_bad_arguments_are_refused_before_ray_is_touched(kwargs, message, monkeypatch):
    from medqa import runtime

    monkeypatch.setattr(runtime, "connect", lambda **_: pytest.fail("connected before validating"))
    args = dict(model="tiny-random", adapter=None, load_in_4bit=False, method="letter", batch_size=4,
                workers=2, gpus_per_worker=0.0) | kwargs
    with pytest.raises(ValueError, match=message):
        ray_scorer(**args)


def test_a_ray_the_scorer_connected_is_shut_down_once(ray_session, monkeypatch):
    from medqa import runtime

    shutdowns = []
    monkeypatch.setattr(runtime, "connect", lambda **_: True)  # as if this call had started Ray
    monkeypatch.setattr(ray_session, "shutdown", lambda: shutdowns.append(1))
    scorer = ray_scorer("tiny-random", None, False, "letter", BATCH, WORKERS)
    with scorer:
        pass
    scorer.close()
    assert shutdowns == [1]


def test_a_pool_larger_than_a_ray_this_scorer_started_is_refused_at_once(ray_session, monkeypatch):
    from medqa import runtime

    shutdowns = []
    monkeypatch.setattr(runtime, "connect", lambda **_: True)
    monkeypatch.setattr(ray_session, "shutdown", lambda: shutdowns.append(1))
    cpus = int(ray_session.cluster_resources()["CPU"])
    with pytest.raises(RuntimeError, match="ask for more than this Ray has"):
        RayScorer("tiny-random", None, False, "letter", BATCH, cpus + 1)
    with pytest.raises(RuntimeError, match="GPU"):
        RayScorer("tiny-random", None, False, "letter", BATCH, 1, gpus_per_worker=1)
    assert shutdowns == [1, 1]  # the Ray it connected is not left behind


def _evaluate_job():
    spec = importlib.util.spec_from_file_location("evaluate_job", REPO / "jobs" / "evaluate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def job_run(ray_session, tiny_model_path, tmp_path_factory):
    """(argv, printed stdout, report) of `jobs/evaluate.py` on the smoke config (2 workers), in process."""
    output = tmp_path_factory.mktemp("evaluate-job") / "report.json"
    argv = ["--config", str(SMOKE_CONFIG), f"output={output}", f"limit={N}"]
    capture = io.StringIO()
    with contextlib.redirect_stdout(capture):
        assert _evaluate_job().main(argv) == 0
    return argv, capture.getvalue(), json.loads(output.read_text())


def test_the_job_runs_the_smoke_config_and_prints_its_summary_last(job_run, ray_session):
    argv, stdout, report = job_run
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["n"] == N and summary["accuracy"] == report["accuracy"]
    assert summary["report"] == argv[2].removeprefix("output=")
    assert report["workers"] == 2 and report["model"] == "tiny-random"
    assert report["permutation_consistency"]["n"] == N  # read off the rotations: one pool run
    assert ray_session.is_initialized()


def test_evaluate_with_two_workers_predicts_as_in_process(job_run, tmp_path):
    """The job's run_evaluation(workers=2) against run_evaluation(workers=0), same settings."""
    argv, _, pooled = job_run
    settings = _evaluate_job().load_settings(argv[1], argv[2:])
    assert settings.workers == 2
    _, local = run_evaluation(replace(settings, workers=0, output=str(tmp_path / "report.json")))
    assert local["workers"] == 0 and local["n"] == pooled["n"] == N
    pooled_rows, local_rows = pooled["predictions"], local["predictions"]
    assert [(r["id"], r["predicted"]) for r in pooled_rows] == [(r["id"], r["predicted"]) for r in local_rows]
    for a, b in zip(pooled_rows, local_rows):
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=2e-6)  # rounded to 6 places
    for key in ("accuracy", "permutation_consistency", "debiased"):
        assert pooled[key] == local[key], key


def test_the_job_names_the_valid_keys_for_an_unknown_one(capsys):
    with pytest.raises(SystemExit) as exit_info:
        _evaluate_job().main(["--config", str(SMOKE_CONFIG), "worker=3"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "unknown evaluate setting(s) ['worker']" in message and "workers" in message and "gpus_per_worker" in message


def test_the_job_reads_override_values_as_yaml(tmp_path):
    settings = _evaluate_job().load_settings(str(SMOKE_CONFIG), ["limit=64", "adapter=null", "plots=true",
                                                                 "gpus_per_worker=0.5"])
    assert (settings.limit, settings.adapter, settings.plots, settings.gpus_per_worker) == (64, None, True, 0.5)
    assert (settings.model, settings.workers, settings.data) == ("tiny-random", 2, "sample")
