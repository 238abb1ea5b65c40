"""`medqa export`: merge a LoRA adapter into its base and save a standalone model.

Which base the merge uses: for a QLoRA adapter (the config saved beside it
says `model.load_in_4bit: true`) the base is the **de-quantised NF4 base**:
the 4-bit weights loaded exactly as in training, then de-quantised to the
compute dtype (`model.dequantize()`). The adapter was trained against those
weights (W_nf4 + BA), so merging into them reproduces the trained model up
to the 4-bit kernel's own numerics (on CPU bitsandbytes' 4-bit matmul differs
from "de-quantise then matmul" by ~0.4 max logit on SmolLM2 even with no
adapter; measured, 2026-11). Merging into the original full-precision weights instead
gives W_fp + BA, which differs by the quantisation error W_fp - W_nf4 that
the adapter never saw. `export_merged` measures both on a probe prompt and
reports them (`max_logit_diff_vs_trained` for the merge it saved,
`max_logit_diff_fp_base` for the alternative). On the smoke SmolLM2 adapter:
0.49 for the de-quantised merge vs 5.67 for the fp-base merge (logits up to
~19), so the de-quantised base is the one that reproduces the trained model.
For an adapter trained on a full-precision base the base is simply the
original weights.

The output is a plain transformers checkpoint (safetensors + config +
tokenizer) that loads with `AutoModelForCausalLM.from_pretrained` and no peft.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Optional

from medqa.config import load_config

PROBE_PROMPT = "Question: Which vitamin deficiency causes scurvy?\nChoices:\nA. A\nB. B12\nC. C\nD. D\nAnswer:"


def _base(cfg, dequantised: bool):
    from medqa.modeling.loading import load_model, resolve_compute_dtype

    if cfg.model.load_in_4bit and dequantised:
        model = load_model(cfg.model)
        model = model.dequantize(dtype=resolve_compute_dtype(cfg.model.compute_dtype))
        return model
    return load_model(dataclasses.replace(cfg.model, load_in_4bit=False))


def _last_logits(model, tokenizer):
    import torch

    from medqa.modeling.scoring import last_logits

    return torch.tensor(last_logits(model, tokenizer, PROBE_PROMPT))


def merged_model(adapter_dir: str, dequantised: bool = True):
    from medqa.modeling.lora import load_adapter

    cfg = load_config(Path(adapter_dir) / "medqa_config.yaml")
    return load_adapter(_base(cfg, dequantised), adapter_dir).merge_and_unload(), cfg


def export_merged(adapter_dir: str, output: Optional[str] = None) -> dict:
    """Merge `adapter_dir` into the de-quantised base, save to `output`; return a summary."""
    from transformers import AutoModelForCausalLM

    from medqa.modeling.loading import load_model, load_tokenizer
    from medqa.modeling.lora import load_adapter

    adapter = Path(adapter_dir).expanduser().resolve()
    if not (adapter / "adapter_config.json").exists():
        raise FileNotFoundError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
    if not (adapter / "medqa_config.yaml").exists():
        raise FileNotFoundError(f"{adapter} has no medqa_config.yaml (the resolved training config)")
    out = Path(output).expanduser().resolve() if output else adapter.with_name(adapter.name + "-merged")
    tokenizer = load_tokenizer(str(adapter))
    model, cfg = merged_model(str(adapter), dequantised=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)

    trained = _last_logits(load_adapter(load_model(cfg.model), str(adapter)), tokenizer)
    saved = _last_logits(AutoModelForCausalLM.from_pretrained(out), tokenizer)
    summary = {
        "output": str(out),
        "adapter": str(adapter),
        "base": cfg.model.name,
        "merge_base": "dequantised-nf4" if cfg.model.load_in_4bit else "original",
        "max_logit_diff_vs_trained": float((saved - trained).abs().max()),
    }
    if cfg.model.load_in_4bit:
        fp_merge, _ = merged_model(str(adapter), dequantised=False)
        summary["max_logit_diff_fp_base"] = float((_last_logits(fp_merge, tokenizer) - trained).abs().max())
    return summary
