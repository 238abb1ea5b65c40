"""The harmful-request data: sources, seeded splits and training windows.

Data: positives are MedSafetyBench requests (`harmful_medical_request`,
`category` 1-9) plus the harmful requests written for this project;
negatives are MedMCQA questions, MedQuAD consumer questions (CC BY 4.0: "MedQuAD,
Ben Abacha and Demner-Fushman, BMC Bioinformatics 2019"), the consumer questions
written for this project, and (training only) benign questions on harm-adjacent
topics; `training.py` adds the first-person crisis texts written for the crisis
detector as negatives too -- a person in distress is not making a harmful
request. Every source is split 60/20/20 (train/validation/test) with one seed;
the test splits are read only by `benchmarks/safety.py` and one test of the shipped heads.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from medqa.safety.normalize import normalize_text

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


def extra_harmful(name: str = "extra_harmful_requests.tsv") -> list[tuple[str, int]]:
    return [(t, int(c)) for c, t in (ln.split("\t", 1) for ln in _lines(name))]


def typed_harmful() -> list[tuple[str, int]]:
    """Harmful requests as users type them (pretexts, slang, typos), written for this project."""
    return extra_harmful("more_harmful_requests.tsv")


def lookalikes() -> list[str]:
    """Benign questions in harmful requests' vocabulary (safe opioid storage, my own records)."""
    return _lines("more_benign_lookalikes.txt")


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


MEDQUAD_SAMPLE = 10_000  # of 43k: enough benign consumer questions; each one costs fine-tuning time


def medquad_questions(data_dir: Path, seed: int) -> list[str]:
    path = data_dir / "medquad_questions.jsonl"
    if not path.exists():
        return []
    texts = sorted({r["text"] for r in read_jsonl(path)})
    random.Random(f"medquad-{seed}").shuffle(texts)
    return texts[:MEDQUAD_SAMPLE]


def build_corpus(data_dir: Path, seed: int = 0) -> Corpus:
    """Every source split 60/20/20 with one seed; `data_dir` holds the shared files."""
    msb = [(r["harmful_medical_request"], 1, int(r["category"]), "medsafetybench")
           for r in read_jsonl(data_dir / "medsafetybench_train.jsonl")]
    mcq = [(r["question"], 0, 0, "medmcqa") for r in read_jsonl(data_dir / "medmcqa_dev_public.jsonl")]
    medquad = [(q, 0, 0, "medquad") for q in medquad_questions(data_dir, seed)]
    consumer = [(q, 0, 0, "consumer") for q in consumer_questions()]
    extra = [(t, 1, c, "extra_harmful") for t, c in extra_harmful()]
    typed = [(t, 1, c, "typed_harmful") for t, c in typed_harmful()]
    alike = [(q, 0, 0, "lookalike") for q in lookalikes()]
    corpus = Corpus({s: [] for s in SPLITS})
    for rows, strat in ((msb, lambda r: r[2]), (mcq, None), (medquad, None), (consumer, None),
                        (extra, lambda r: r[2]), (typed, lambda r: r[2]), (alike, None)):
        for part, items in split(rows, seed, strat).items():
            corpus.rows[part].extend(items)
    # Training-only negatives: benign questions on harm-adjacent topics.
    corpus.rows["train"].extend((q, 0, 0, "hard_negative") for q in hard_negatives())
    return corpus


def pick_threshold(pos_scores: np.ndarray, min_recall: float) -> float:
    """Highest threshold whose recall on `pos_scores` is at least `min_recall`."""
    ranked = np.sort(pos_scores)[::-1]
    k = max(int(np.ceil(min_recall * len(ranked))), 1)
    return float(ranked[k - 1])


def fit(emb: np.ndarray, labels: np.ndarray, c: float, seed: int, balanced: bool = True):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, class_weight="balanced" if balanced else None, max_iter=5000,
                              random_state=seed).fit(emb, labels)


def training_windows(row: tuple) -> list[tuple]:
    """A benign text teaches with every window the classifier will read of it
    (a sentence of an exam vignette alone must not look harmful); a harmful one
    with its whole text (its other sentences may be innocent framing)."""
    from medqa.safety.learned import reading_windows

    text, label, category, source = row
    text = normalize_text(text)
    if label:
        return [(text, label, category, source)]
    return list(dict.fromkeys([(text, 0, 0, source)] + [(w.text, 0, 0, source) for w in reading_windows(text)]))
