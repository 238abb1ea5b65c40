"""Exact and near-duplicate removal (MinHash LSH vs brute force) and contamination counting."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq

from data_helpers import clean_rows, data_config, write_jsonl
from medqa.data.normalize import (
    NearDupIndex,
    band_keys,
    exact_key,
    jaccard,
    n_bands,
    question_key,
    shingle_text,
    shingles,
)

OPTS = ("opa", "opb", "opc", "opd")


def test_question_key_ignores_case_space_and_punctuation():
    assert (question_key("  Drug of CHOICE for   absence seizures?")
            == question_key("drug of choice, for absence seizures"))
    assert question_key("Drug of choice") != question_key("Drugs of choice")


def test_exact_key_ignores_option_order_and_case():
    assert exact_key("Q one?", ["a", "B", "c", "d"]) == exact_key("q  ONE", ["D", "c", "b", "A"])
    assert exact_key("Q one?", ["a", "b", "c", "d"]) != exact_key("Q one?", ["a", "b", "c", "e"])


def _perturb(text: str, rng: random.Random, n_words: int) -> str:
    words = text.split()
    for _ in range(n_words):
        words[rng.randrange(len(words))] = f"w{rng.randrange(10**6)}"
    return " ".join(words)


def test_lsh_matches_brute_force_keep_first(dev_rows):
    """Planted near-duplicates at many similarity levels: LSH + exact check == O(n^2) brute force."""
    rng = random.Random(0)
    base = [r for r in clean_rows(dev_rows) if len(r["question"].split()) >= 12][:150]
    texts = [shingle_text(r["question"], [r[k] for k in OPTS]) for r in base]
    texts += [_perturb(t, rng, rng.randrange(1, 6)) for t in rng.sample(texts, 150)]
    sets = [shingles(t) for t in texts]
    threshold = 0.8
    bands = n_bands(threshold)
    index = NearDupIndex(threshold)
    lsh = [index.add(i, s, band_keys(s, bands)) is None for i, s in enumerate(sets)]
    brute, kept = [], []
    for s in sets:
        dup = any(jaccard(s, sets[k]) >= threshold for k in kept)
        brute.append(not dup)
        if not dup:
            kept.append(len(brute) - 1)
    assert lsh == brute
    assert 20 < brute.count(False) < 150  # the planted set really spans both sides of the threshold


def test_band_keys_are_stable_across_calls():
    s = shingles("the quick brown fox jumps over the lazy dog")
    assert band_keys(s, 8) == band_keys(np.array(s), 8)
    assert n_bands(0.9) < n_bands(0.7) <= 64


def _variant(row: dict) -> dict:
    """Same question and options, different case, spacing, punctuation and option order."""
    opts = [row[k] for k in OPTS][::-1]
    return {**row, "id": row["id"] + "-copy", "question": "  " + row["question"].upper().replace(" ", "   ") + " ?",
            **dict(zip(OPTS, opts)), "cop": 3 - row["cop"]}


def _near(row: dict) -> dict:
    words = row["question"].split()
    return {**row, "id": row["id"] + "-near", "question": " ".join(words[:-1] + ["(repeated)", words[-1]])}


def test_pipeline_removes_exact_and_near_duplicates(tmp_path, dev_rows, tiny_tokenizer):
    from medqa.data.preprocess import preprocess_in_process

    real = [r for r in clean_rows(dev_rows) if len(r["question"].split()) >= 25][:60]
    rows = real + [_variant(r) for r in real[:10]] + [_near(r) for r in real[10:17]]
    cfg = data_config(tmp_path, write_jsonl(tmp_path / "d.jsonl", rows), "data.val_fraction=0.0",
                      "data.near_duplicate_threshold=0.85")
    summary = preprocess_in_process(cfg, progress=False)
    assert (summary["duplicates_exact"], summary["duplicates_near"], summary["duplicates"]) == (10, 7, 17)
    ids = set(pq.read_table(tmp_path / "out" / "train").column("id").to_pylist())
    assert {r["id"] for r in real} <= ids and not any(i.endswith(("-copy", "-near")) for i in ids)


def test_contamination_counted_exactly(tmp_path, dev_rows, tiny_tokenizer):
    from medqa.data.preprocess import preprocess_in_process

    rows = clean_rows(dev_rows[:300])
    leaked = rows[5::7]  # 42 rows
    eval_rows = [{**r, "question": "\t" + r["question"].swapcase().replace(" ", "  \n ") + " "} for r in leaked]
    eval_rows += clean_rows(dev_rows[2000:2050])  # unrelated eval rows do not count
    eval_path = write_jsonl(tmp_path / "eval.jsonl", eval_rows)
    cfg = data_config(tmp_path, write_jsonl(tmp_path / "train.jsonl", rows),
                      f"data.eval_source={json.dumps(str(eval_path))}")
    summary = preprocess_in_process(cfg, progress=False)
    assert summary["contaminated"] == len(leaked) == 42
    assert summary["duplicates"] == 0
    out = {question_key(q) for split in ("train", "validation")
           for q in pq.read_table(tmp_path / "out" / split).column("question").to_pylist()}
    assert not out & {question_key(r["question"]) for r in leaked}
    assert summary["rows_kept"] == len(rows) - 42
