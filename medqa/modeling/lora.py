"""LoRA adapters through peft: attach, reload, merge."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medqa.config import LoraConfig, ModelConfig
from medqa.modeling.presets import get_preset

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel


CHECKPOINTING = {"use_reentrant": False}
"""Non-reentrant activation checkpointing, said explicitly: peft passes `{}` when given nothing,
and torch then falls back to the reentrant variant (which DDP's unused-parameter detection and
frozen-input LoRA layers handle badly)."""


def lora_targets(model_name: str, lora: LoraConfig) -> list[str] | str:
    """Configured targets, else the preset's, else every linear layer (peft's `all-linear`)."""
    if lora.target_modules:
        return list(lora.target_modules)
    preset = get_preset(model_name)
    return list(preset.lora_targets) if preset else "all-linear"


def attach_lora(
    model: "PreTrainedModel", model_cfg: ModelConfig, lora: LoraConfig, gradient_checkpointing: bool = False
) -> "PeftModel":
    """Wrap a base model with a fresh, trainable LoRA adapter (QLoRA when the base is 4-bit)."""
    from peft import LoraConfig as PeftLoraConfig, get_peft_model, prepare_model_for_kbit_training

    if model_cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing,
                                                gradient_checkpointing_kwargs=CHECKPOINTING)
    elif gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINTING)
        model.enable_input_require_grads()
    peft_config = PeftLoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora_targets(model_cfg.name, lora),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def load_adapter(model: "PreTrainedModel", adapter_dir: str, trainable: bool = False) -> "PeftModel":
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=trainable)
