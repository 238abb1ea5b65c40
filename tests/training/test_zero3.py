"""DeepSpeed ZeRO-3 on 2 CPU workers (gloo): every rank joins every collective.

Under ZeRO-3 each forward pass gathers the layers' weights from all ranks, so a
forward pass one rank makes and another does not (the end-of-run probe on rank 0,
MCQ scoring when a rank has fewer questions) hangs the run. The timeouts bound that.
A whole ZeRO-3 run -- training, evaluation with uneven shares, checkpoints, a worker
failure and its resume, the summary -- is the GPU smoke script's, run here with --cpu
(tests/test_gpu_smoke.py).
"""

from __future__ import annotations

import functools

import pytest

from medqa.config import load_config

pytestmark = [pytest.mark.ray, pytest.mark.timeout(420)]

ZERO3 = {"training.strategy": "deepspeed", "training.zero_stage": 3, "model.load_in_4bit": False}


def test_zero3_mcq_accuracy_with_fewer_equal_and_more_questions_than_workers(
        ray_session, prepared_data, tiny_overrides, tmp_path):
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from medqa.data.record import MCQRecord
    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.scoring import mcq_accuracy
    from medqa.training.driver import load_tables, make_loop_config, mcq_records, share

    # Defined here so Ray ships it by value (workers cannot import test modules).
    def _evaluations(loop):
        # The worker loop: one trainer, evaluated with the first n MCQ questions for each n.
        import ray.train

        from medqa.training.loop import worker_trainer

        trainer = worker_trainer(loop)
        # Partitioned as it loaded: each frozen base weight is an empty placeholder for its shards.
        base = [p for p in trainer.model.parameters() if not p.requires_grad]
        partitioned = all(p.data.numel() == 0 and p.ds_numel > 0 for p in base)
        questions = list(trainer.mcq_records)
        accuracies = {}
        for n in limits:
            trainer.mcq_records = questions[:n]
            accuracies[n] = trainer.evaluate()["eval_accuracy"]
        return (accuracies, partitioned) if ray.train.get_context().get_world_rank() == 0 else None

    cfg = load_config(None, tiny_overrides(prepared_data, tmp_path / "runs", **ZERO3))
    records = mcq_records(prepared_data, 5)
    loop = make_loop_config(cfg, "zero3-eval", share(load_tables(cfg, prepared_data)), 96, None, records)
    limits = [1, 2, 5]  # fewer than, as many as and more than the 2 workers (5: unequal shares)
    result = TorchTrainer(
        functools.partial(_evaluations, loop), torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=RunConfig(name="zero3-eval", storage_path=str(tmp_path / "runs")),
    ).fit()

    # A fresh LoRA adapter changes nothing (B = 0): the sharded model must answer as the base does.
    base, tokenizer = load_model(cfg.model), load_tokenizer(cfg.model)
    questions = [MCQRecord.from_dict(r) for r in records]
    expected = {n: mcq_accuracy(base, tokenizer, questions[:n]) for n in limits}
    accuracies, partitioned = result.return_value
    assert partitioned  # no rank loaded a whole copy of the base
    assert accuracies == expected
