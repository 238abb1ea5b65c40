"""The Ray Train worker loop: the only code that touches `ray.train`.

It rebuilds the `Config` from a plain dict, takes its data shard from Ray
Data (already tokenised and batched-ready by the driver), builds the HF
`Trainer` from pure pieces in `medqa.training.hf`, and hands checkpoints and
metrics to Ray through `RayTrainReportCallback`. After a worker failure Ray
restarts the group and `ray.train.get_checkpoint()` returns the latest
reported checkpoint, which the HF `Trainer` resumes from (model, optimizer,
scheduler, RNG and step).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from functools import partial
from typing import Optional

from medqa.config import from_dict


def train_loop_per_worker(loop_config: dict) -> Optional[dict]:
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    from medqa.data.record import MCQRecord
    from medqa.modeling.loading import load_tokenizer
    from medqa.training import hf
    from medqa.training.batching import collate

    cfg = from_dict(loop_config["config"])
    if cfg.training.strategy == "deepspeed" and not cfg.training.use_gpu:
        # DeepSpeed picks its accelerator at import; without a GPU it must be told.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    ctx = ray.train.get_context()
    tokenizer = load_tokenizer(cfg.model)
    model = hf.build_model(cfg)
    batches = partial(_batches, collate_fn=partial(collate, pad_token_id=tokenizer.pad_token_id),
                      batch_size=cfg.training.batch_size)
    is_zero = ctx.get_world_rank() == 0
    args = hf.training_arguments(
        cfg,
        output_dir=tempfile.mkdtemp(prefix=f"medqa-rank{ctx.get_world_rank()}-"),
        max_steps=loop_config["max_steps"],
        logging_dir=loop_config.get("logging_dir") if is_zero else None,
        deepspeed_config=loop_config.get("deepspeed_config"),
    )
    trainer = hf.MedqaTrainer(
        model=model,
        args=args,
        train_dataset=batches(ray.train.get_dataset_shard("train")),
        eval_dataset=batches(ray.train.get_dataset_shard("validation")),
        processing_class=tokenizer,
        callbacks=hf.callbacks(cfg, loop_config.get("fail_marker")) + [RayTrainReportCallback()],
        mcq_records=[MCQRecord.from_dict(r) for r in loop_config.get("mcq_records", [])],
    )
    trainer = prepare_trainer(trainer)
    with ExitStack() as stack:
        resume = _resume_dir(stack, ray.train.get_checkpoint(), loop_config.get("resume_path"))
        resumed_from = hf.checkpoint_step(resume)
        output = trainer.train(resume_from_checkpoint=resume)
    # Ray returns rank 0's value as `Result.return_value`: where this attempt
    # resumed, and the trained model's logits on one validation prompt so
    # callers can check a reloaded adapter.
    if not is_zero:
        return None
    return {"resumed_from_step": resumed_from, "train_metrics": output.metrics,
            "probe": hf.probe(trainer.model, tokenizer, trainer.mcq_records)}


def _batches(shard, collate_fn, batch_size: int):
    """A re-iterable of collated torch batches (one pass per epoch), as `prepare_trainer` expects."""
    return shard.iter_torch_batches(batch_size=batch_size, collate_fn=collate_fn)


def _resume_dir(stack: ExitStack, checkpoint, resume_path: Optional[str]) -> Optional[str]:
    """Ray's restored checkpoint wins (failure recovery / restored run); else the requested path."""
    if checkpoint is not None:
        root = stack.enter_context(checkpoint.as_directory())
        return os.path.join(root, "checkpoint")
    return resume_path
