"""The Hugging Face side of training: model, `TrainingArguments`, `Trainer`, callbacks.

Nothing here imports Ray, so these pieces run the same in a Ray worker, in the
plain single-process benchmark baseline and in unit tests.
"""

from __future__ import annotations

import math
import os
from functools import partial
from pathlib import Path
from typing import Any, Optional, Sequence

from transformers import Trainer, TrainerCallback, TrainingArguments

from medqa.config import Config, save_config
from medqa.modeling.devices import Device, compute_dtype, mixed_precision
from medqa.modeling.loading import load_model
from medqa.modeling.lora import attach_lora
from medqa.training.batching import collate_rows, warmup_steps

CONFIG_FILENAME = "medqa_config.yaml"
"""The resolved config saved beside every adapter checkpoint."""


def is_zero3(cfg: Config) -> bool:
    return cfg.training.strategy == "deepspeed" and cfg.training.zero_stage == 3


def build_model(cfg: Config):
    """QLoRA model: the (4-bit) base with a fresh trainable LoRA adapter. Under ZeRO-3 build
    the `TrainingArguments` first: their DeepSpeed config makes from_pretrained partition the
    weights as they load instead of putting a whole copy on every rank."""
    model = load_model(cfg.model, zero3=is_zero3(cfg))
    return attach_lora(model, cfg.model, cfg.lora, gradient_checkpointing=cfg.training.gradient_checkpointing)


def report_to(cfg: Config) -> list[str]:
    """wandb only when enabled (offline unless configured); TensorBoard always."""
    targets = ["tensorboard"]
    if cfg.wandb.enabled and cfg.wandb.mode != "disabled":
        os.environ.setdefault("WANDB_MODE", cfg.wandb.mode)
        os.environ.setdefault("WANDB_PROJECT", cfg.wandb.project)
        targets.append("wandb")
    return targets


def training_arguments(
    cfg: Config,
    output_dir: str,
    max_steps: int,
    logging_dir: Optional[str] = None,
    deepspeed_config: Optional[dict] = None,
) -> TrainingArguments:
    t = cfg.training
    device = Device.current() if t.use_gpu else Device()
    precision = mixed_precision(compute_dtype(cfg.model.compute_dtype, device), device)
    if logging_dir:
        os.environ["TENSORBOARD_LOGGING_DIR"] = logging_dir  # read by transformers' TensorBoardCallback
    return TrainingArguments(
        output_dir=output_dir,
        max_steps=max_steps,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=warmup_steps(max_steps, t.warmup_ratio),
        lr_scheduler_type=t.lr_scheduler,
        logging_steps=t.logging_steps,
        eval_strategy="steps",
        eval_steps=t.eval_steps,
        save_strategy="steps",
        save_steps=t.save_steps,
        # Ray Train keeps the persistent copies; one local copy is enough.
        save_total_limit=1,
        prediction_loss_only=True,
        **precision,
        use_cpu=not t.use_gpu,
        seed=cfg.seed,
        report_to=report_to(cfg),
        run_name=t.run_name,
        remove_unused_columns=False,
        # The Trainer's own samplers: a fresh shuffle per epoch, length grouping from the
        # pipeline's `length` column, exact batch skipping on resume.
        train_sampling_strategy="group_by_length" if t.batching == "group_by_length" else "random",
        length_column_name="length",
        include_num_input_tokens_seen="non_padding",
        ddp_find_unused_parameters=False,
        disable_tqdm=True,
        deepspeed=deepspeed_config,
    )


class MedqaTrainer(Trainer):
    """`Trainer` whose evaluation adds multiple-choice accuracy (`eval_accuracy`).

    Every rank scores its share of `mcq_records` and the counts are summed across
    ranks, so the work is shared and all ranks log the same number. The shares are
    padded to one length and the ranks agree on their number of forward passes:
    under ZeRO-3 every forward pass is a collective that all ranks must join.
    """

    def __init__(self, *args, mcq_records: list | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.mcq_records = [r for r in mcq_records or [] if r.answer_index is not None]

    def evaluate(self, *args, **kwargs) -> dict[str, float]:
        metrics = super().evaluate(*args, **kwargs)
        if self.mcq_records:
            accuracy = self._mcq_accuracy()
            metrics["eval_accuracy"] = accuracy
            self.log({"eval_accuracy": accuracy})
        return metrics

    def _distributed(self) -> bool:
        import torch.distributed as dist

        return self.args.world_size > 1 and dist.is_initialized()

    def _all_reduce(self, values: list[float], op: str = "sum") -> list[float]:
        """Reduced over the ranks, on the trainer's device (NCCL takes CUDA tensors only)."""
        import torch
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.args.device)
        if self._distributed():
            dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
        return tensor.tolist()

    def _mcq_accuracy(self) -> float:
        from medqa.modeling.scoring import score_records

        world = self.args.world_size if self._distributed() else 1
        share, counted = rank_share(self.mcq_records, self.args.process_index if world > 1 else 0, world)
        sync = (lambda n: int(self._all_reduce([n], "max")[0])) if world > 1 else None
        scores = score_records(self.model, self.processing_class, share,
                               batch_size=self.args.per_device_eval_batch_size, sync_passes=sync)
        correct = sum(s.predicted_index == r.answer_index for s, r in zip(scores[:counted], share))
        total_correct, total = self._all_reduce([correct, counted])
        return total_correct / total


def rank_share(records: list, rank: int, world: int) -> tuple[list, int]:
    """Rank `rank`'s records (every world-th from its own) padded with copies of the first
    record to the length of the largest share, and how many of them are its own: every rank,
    with fewer records than ranks too, runs the same scoring work and counts only its own."""
    mine = records[rank::world]
    size = -(-len(records) // world)
    return mine + records[:1] * (size - len(mine)), len(mine)


def make_trainer(args: TrainingArguments, model, tokenizer, train, validation=None, callbacks: Sequence[Any] = (),
                 mcq_records: Optional[list] = None) -> "MedqaTrainer":
    """The `Trainer` over prepared token tables (Arrow, as the data pipeline wrote them).

    `datasets.Dataset` wraps the tables without copying them; the `Trainer` then
    samples, shards across workers and pads (`collate_rows`) as for any map-style dataset.
    """
    import datasets

    def wrap(table, split: str):
        # A given fingerprint spares `datasets` hashing the whole table (nothing here caches
        # transforms); in a Ray worker that hashing also printed bytecode through dill.
        return datasets.Dataset(table, fingerprint=f"medqa-{split}") if table is not None else None

    return MedqaTrainer(
        model=model, args=args, processing_class=tokenizer,
        train_dataset=wrap(train, "train"), eval_dataset=wrap(validation, "validation"),
        data_collator=partial(collate_rows, pad_token_id=tokenizer.pad_token_id),
        callbacks=list(callbacks), mcq_records=mcq_records,
    )


class SaveConfigCallback(TrainerCallback):
    """Writes the resolved config into each checkpoint, before Ray copies it.

    Must be registered before `RayTrainReportCallback`, which reports the
    checkpoint in its own `on_save`.
    """

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            save_config(self.cfg, Path(args.output_dir) / f"checkpoint-{state.global_step}" / CONFIG_FILENAME)


class InjectedFailure(RuntimeError):
    """Raised once by `FailOnceCallback` to exercise fault tolerance."""


class FailOnceCallback(TrainerCallback):
    """Testing aid: the main process raises at `step`, once per marker file.

    The marker lives in the run's storage folder so that the restarted worker
    group (same run) does not fail again.
    """

    def __init__(self, step: int, marker: str):
        self.step, self.marker = step, Path(marker)

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step and state.is_world_process_zero and not self.marker.exists():
            self.marker.parent.mkdir(parents=True, exist_ok=True)
            self.marker.write_text(f"failed at step {self.step}\n")
            raise InjectedFailure(f"injected failure at step {self.step} (training.fail_at_step)")


def checkpoint_step(checkpoint_dir: Optional[str]) -> Optional[int]:
    """The optimizer step an HF checkpoint was saved at (None without a checkpoint)."""
    if not checkpoint_dir:
        return None
    import json

    return json.loads((Path(checkpoint_dir) / "trainer_state.json").read_text())["global_step"]


def probe(model, tokenizer, records: list) -> Optional[dict]:
    """Last-position logits of `model` on the first record's prompt (a fingerprint of the weights)."""
    from medqa.data.prompts import record_prompt
    from medqa.modeling.scoring import last_logits

    if not records:
        return None
    prompt = record_prompt(records[0])
    return {"prompt": prompt, "logits": last_logits(model, tokenizer, prompt)}


def validation_calibration(model, tokenizer, records: list, alpha: float) -> Optional[dict]:
    """The trained model's calibration on the validation questions (the JSON artefact's dict),
    or None when `alpha` is 0 or there are fewer than 1 / alpha questions (with fewer, every set
    is every option). Every rank runs it: under ZeRO-3 each forward pass gathers weights from
    all ranks. A temperature from a few dozen rows is rough: `medqa calibrate` fits on more."""
    from medqa.evaluation.calibration import fit_calibration
    from medqa.evaluation.runner import comparison
    from medqa.modeling.scoring import score_records

    if not alpha or len(records) < math.ceil(1 / alpha):
        return None
    scores = score_records(model, tokenizer, records)
    fitted = fit_calibration([comparison(s) for s in scores], [r.answer_index for r in records],
                             [r.subject or "Unknown" for r in records], alpha=alpha,
                             source=f"training validation split (first {len(records)} questions)")
    return fitted.to_dict()


def callbacks(cfg: Config, fail_marker: Optional[str]) -> list[Any]:
    out: list[Any] = [SaveConfigCallback(cfg)]
    if cfg.training.fail_at_step > 0 and fail_marker:
        out.append(FailOnceCallback(cfg.training.fail_at_step, fail_marker))
    return out
