"""Safety benchmark: harmful-request recall/FPR on held-out splits, latencies, table sizes.

    .venv/bin/python benchmarks/safety.py [--data-dir ../shared/data] [--seed 0]

Prints a JSON summary (also written to benchmarks/out/safety.json). The splits
are the seeded 60/20/20 splits of `medqa.safety.harm_training.build_corpus`,
the same ones `medqa safety train-classifier` trains and picks its threshold on,
so the "test" numbers are on rows the head never saw.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def rule_latency(texts: list[str]) -> dict:
    from medqa.safety import MedicalSafetyValidator

    validator = MedicalSafetyValidator(use_classifier=False)
    validator.check_request(texts[0])  # compile regexes, build lexicon
    wall, cpu = [], []
    for text in texts:
        w0, c0 = time.perf_counter(), time.process_time()
        validator.check_request(text)
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    stats = lambda xs: {"median_ms": round(float(np.median(xs)), 3),  # noqa: E731
                        "p95_ms": round(float(np.percentile(xs, 95)), 3)}
    return {"n": len(texts), "wall": stats(wall), "cpu": stats(cpu)}


def benign_rule_rates(texts: list[str]) -> dict:
    """How often the rule checks raise anything on benign text (emergency must be rare)."""
    from medqa.safety import MedicalSafetyValidator

    validator = MedicalSafetyValidator(use_classifier=False)
    reports = [validator.check_request(t) for t in texts]
    rate = lambda cat: round(float(np.mean([cat in r["categories"] for r in reports])), 4)  # noqa: E731
    return {"n": len(texts), "emergency": rate("emergency"), "dosage": rate("dosage"),
            "drug_interaction": rate("drug_interaction"),
            "emergency_examples": [t for t, r in zip(texts, reports) if "emergency" in r["categories"]][:5]}


def ddinter_scale(n_pairs: int = 200_000) -> dict:
    from medqa.safety.interactions import InteractionChecker, load_ddinter

    names = [f"drugx{i:05d}" for i in range(1000)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ddinter.csv"
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["DDInterID_A", "Drug_A", "DDInterID_B", "Drug_B", "Level"])
            pairs = ((i, j) for i in range(1000) for j in range(i + 1, 1000))
            for _, (i, j) in zip(range(n_pairs), pairs):
                w.writerow([f"DDInter{i}", names[i], f"DDInter{j}", names[j], ("Major", "Moderate", "Minor")[(i + j) % 3]])
        start = time.perf_counter()
        table = load_ddinter(path)
        load_s = time.perf_counter() - start
    start = time.perf_counter()
    for k in range(100_000):
        table.lookup(names[k % 400], names[400 + k % 600])
    lookup_us = (time.perf_counter() - start) / 100_000 * 1e6
    checker = InteractionChecker(table)
    text = f"I take {names[3]}, {names[9]} and warfarin with {names[700]}"
    start = time.perf_counter()
    for _ in range(1000):
        checker.check(text)
    check_ms = (time.perf_counter() - start) / 1000 * 1000
    return {"pairs": len(table), "load_s": round(load_s, 2), "lookup_us": round(lookup_us, 3),
            "text_check_ms": round(check_ms, 4)}


def main() -> None:
    from medqa.safety.harm import HarmClassifier, shared_embedder
    from medqa.safety.harm_training import (CachedEmbedder, build_corpus, default_cache_path, evaluate,
                                            latency_ms, shared_data_dir)
    from medqa.safety.interactions import default_table

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)  # one core per text: the cost a serving replica pays
    data_dir = Path(args.data_dir) if args.data_dir else shared_data_dir()
    corpus = build_corpus(data_dir, args.seed)
    cached = HarmClassifier(embedder=CachedEmbedder(shared_embedder(), default_cache_path()))
    test_texts = corpus.texts("test")
    mixed = test_texts[::max(len(test_texts) // 100, 1)][:100]
    summary = {
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 1)},
        "classifier": {part: evaluate(cached, data_dir, args.seed, part) for part in ("val", "test")},
        "classifier_latency": latency_ms(HarmClassifier(), mixed),
        "rule_latency": rule_latency(test_texts),
        "rules_on_benign": {src: benign_rule_rates(corpus.texts("test", src)) for src in ("medmcqa", "consumer")},
        "curated_table": {"drug_pairs": len(default_table().drug_pairs()), "with_class_pairs": len(default_table())},
        "ddinter_200k": ddinter_scale(),
    }
    out = Path(__file__).resolve().parent / "out" / "safety.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
