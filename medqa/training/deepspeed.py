"""DeepSpeed ZeRO configs generated from the training config.

Values the HF `Trainer` knows (batch sizes, accumulation, clipping, mixed
precision, bucket sizes derived from the model's hidden size) are left as
`"auto"`, which the Trainer's DeepSpeed integration fills in, so the config
can never disagree with `TrainingArguments`. No `optimizer`/`scheduler`
sections: the Trainer's own AdamW and warm-up schedule are used under ZeRO
exactly as under DDP (and DeepSpeed's fused Adam would need a GPU).

- ZeRO-2 partitions optimizer state and gradients. With LoRA these are tiny
  (and DeepSpeed does not manage bitsandbytes 4-bit parameters under ZeRO-2,
  so it takes a full-precision base).
- ZeRO-3 also partitions the parameters: the GPU recipe for bases that do
  not fit one device. QLoRA under ZeRO-3 needs the 4-bit weights stored in
  the compute dtype (`bnb_4bit_quant_storage=bfloat16`) so that DeepSpeed
  can shard them like any bf16 tensor, and the model must be loaded without
  a `device_map`; `medqa.modeling.loading.load_model(zero3=True)` does both.
  A full-precision base is partitioned as it loads when the Trainer's
  DeepSpeed config exists first. The CPU tests run ZeRO-3 on 2 gloo workers
  (tests/training/test_zero3.py); it shares ZeRO-2's runtime path. See
  `jobs/configs/phi2_qlora_gpu.yaml`.
"""

from __future__ import annotations

from medqa.config import Config


def zero_section(stage: int) -> dict:
    common = {
        "stage": stage,
        "overlap_comm": False,
        "contiguous_gradients": True,
        "reduce_bucket_size": "auto",
    }
    if stage == 2:
        return {**common, "allgather_partitions": True, "allgather_bucket_size": 200_000_000, "reduce_scatter": True}
    return {
        **common,
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
        "stage3_max_live_parameters": 1e9,
        "stage3_max_reuse_distance": 1e9,
        # Saves full (gathered) 16-bit weights, so adapters save as usual.
        "stage3_gather_16bit_weights_on_model_save": True,
    }


def deepspeed_config(cfg: Config) -> dict:
    """The DeepSpeed config dict for `TrainingArguments(deepspeed=...)`."""
    return {
        "train_micro_batch_size_per_gpu": "auto",
        "train_batch_size": "auto",
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "zero_optimization": zero_section(cfg.training.zero_stage),
        # The Trainer's torch AdamW runs under ZeRO (DeepSpeed's CPU Adam would need a C++ build).
        "zero_force_ds_cpu_optimizer": False,
        "zero_allow_untested_optimizer": True,
        "wall_clock_breakdown": False,
    }
