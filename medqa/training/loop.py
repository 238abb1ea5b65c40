"""The Ray Train worker loop: the only code that touches `ray.train`.

It receives one typed `LoopConfig`, takes the data pipeline's token
tables from Ray's object store (the driver put them there once; workers on
one node share that memory), builds the HF `Trainer` from pure pieces in
`medqa.training.hf_trainer` (it samples the rows and deals the batches to the
workers), and hands checkpoints and metrics to Ray through
`RayTrainReportCallback`. After a worker failure Ray restarts the group and
`ray.train.get_checkpoint()` returns the latest reported checkpoint, which the
HF `Trainer` resumes from (model, optimizer, scheduler, RNG, and the step: it
skips the batches already seen).
"""

from __future__ import annotations

import os
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Optional

from medqa.config import Config


@dataclass(frozen=True)
class LoopConfig:
    """What every worker receives (`trainer.make_loop_config` builds it on the driver)."""

    cfg: Config
    data: dict  # split -> object ref of its Arrow token table (`trainer.share`)
    max_steps: int
    mcq_records: tuple = ()  # validation questions, as MCQRecord dicts, for eval_accuracy
    resume_path: Optional[str] = None  # a checkpoint to start from when Ray restores none
    fail_marker: Optional[str] = None  # FailOnceCallback's marker (training.fail_at_step)
    logging_dir: Optional[str] = None  # TensorBoard, rank 0 only
    deepspeed_config: Optional[dict] = None


def train_loop_per_worker(loop: LoopConfig) -> Optional[dict]:
    import ray.train

    from medqa.training import hf_trainer

    trainer = worker_trainer(loop)
    with ExitStack() as stack:
        resume = _resume_dir(stack, ray.train.get_checkpoint(), loop.resume_path)
        resumed_from = hf_trainer.checkpoint_step(resume)
        output = trainer.train(resume_from_checkpoint=resume)
    # Ray returns rank 0's value as `Result.return_value`: where this attempt
    # resumed, the trained model's logits on one validation prompt so
    # callers can check a reloaded adapter, and its calibration. Every rank runs the probe's forward
    # pass: under ZeRO-3 it gathers each layer's weights from all ranks.
    probe = hf_trainer.probe(trainer.model, trainer.processing_class, trainer.mcq_records)
    calibration = hf_trainer.validation_calibration(trainer.model, trainer.processing_class, trainer.mcq_records,
                                                    loop.cfg.training.calibration_alpha)
    if ray.train.get_context().get_world_rank() != 0:
        return None
    return {"resumed_from_step": resumed_from, "train_metrics": output.metrics, "probe": probe,
            "calibration": calibration}


def worker_trainer(loop: LoopConfig):
    """This worker's HF `Trainer`, ready to train or evaluate, with Ray's report callback."""
    import ray.train
    from ray.train.huggingface.transformers import RayTrainReportCallback, prepare_trainer

    from medqa.data.record import MCQRecord
    from medqa.modeling.loading import load_tokenizer
    from medqa.training import hf_trainer

    cfg = loop.cfg
    if cfg.training.strategy == "deepspeed" and not cfg.training.use_gpu:
        # DeepSpeed picks its accelerator at import; without a GPU it must be told.
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    rank = ray.train.get_context().get_world_rank()
    tokenizer = load_tokenizer(cfg.model)
    # The arguments before the model: under ZeRO-3 their DeepSpeed config is what makes
    # from_pretrained partition the weights instead of loading a full copy on every rank.
    args = hf_trainer.training_arguments(
        cfg,
        output_dir=tempfile.mkdtemp(prefix=f"medqa-rank{rank}-"),
        max_steps=loop.max_steps,
        logging_dir=loop.logging_dir if rank == 0 else None,
        deepspeed_config=loop.deepspeed_config,
    )
    if args.deepspeed:
        import deepspeed

        # DeepSpeed's comm layer adopts the process group Ray Train set up. ZeRO-3's partitioned
        # load reads the world size from it (accelerate does this itself on GPUs only).
        deepspeed.init_distributed()
    model = hf_trainer.build_model(cfg)
    tables = {split: ray.get(ref) for split, ref in loop.data.items()}
    trainer = hf_trainer.make_trainer(
        args, model, tokenizer, tables["train"], tables["validation"],
        callbacks=hf_trainer.callbacks(cfg, loop.fail_marker) + [RayTrainReportCallback()],
        mcq_records=[MCQRecord.from_dict(r) for r in loop.mcq_records],
    )
    # A no-op for map-style datasets; kept so Ray Data iterables would also work here.
    return prepare_trainer(trainer)


def _resume_dir(stack: ExitStack, checkpoint, resume_path: Optional[str]) -> Optional[str]:
    """Ray's restored checkpoint wins (failure recovery / restored run); else the requested path."""
    if checkpoint is not None:
        root = stack.enter_context(checkpoint.as_directory())
        return os.path.join(root, "checkpoint")
    return resume_path
