"""Harmful-request head: splits, threshold rule, saved-head round trip, and a
held-out sample of the shared data through the shipped head."""

import numpy as np
import pytest

from medqa.safety.harm import HARM_CATEGORIES, HarmClassifier, save_head
from medqa.safety.harm_training import (build_corpus, consumer_questions, extra_harmful, fit_heads,
                                        hard_negatives, pick_threshold, split)


def test_split_is_seeded_disjoint_and_stratified():
    items = [(i, i % 3) for i in range(300)]
    a, b = split(items, 0, lambda r: r[1]), split(items, 0, lambda r: r[1])
    assert a == b and split(items, 1, lambda r: r[1]) != a
    sets = [set(a[p]) for p in ("train", "val", "test")]
    assert sum(map(len, sets)) == 300 and not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert [sum(r[1] == 0 for r in a[p]) for p in ("train", "val", "test")] == [60, 20, 20]


@pytest.mark.parametrize("min_recall, expected", [(1.0, 0.1), (0.9, 0.2), (0.5, 0.6), (0.1, 1.0)])
def test_pick_threshold_keeps_recall(min_recall, expected):
    scores = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert pick_threshold(scores, min_recall) == expected
    assert (scores >= expected).mean() >= min_recall


def test_written_data_is_varied_and_sized():
    consumer = consumer_questions()
    assert len(consumer) >= 300 and len(set(consumer)) == len(consumer)
    assert {c for _, c in extra_harmful()} == set(HARM_CATEGORIES)
    assert not set(hard_negatives()) & set(consumer)  # hard negatives never leak into the consumer test split


class FakeEmbedder:
    """Two-dimensional 'embeddings': harmful texts point one way, benign the other."""

    def encode(self, texts):
        return np.array([[1.0, 0.2] if "poison" in t else [-1.0, 0.1] for t in texts])


def test_saved_head_round_trip(tmp_path):
    emb = np.array([[1.0, 0.2], [0.9, 0.3], [-1.0, 0.1], [-0.8, 0.0]] * 5)
    labels = np.array([1, 1, 0, 0] * 5)
    cats = np.array([8, 3, 0, 0] * 5)
    binary, category = fit_heads(emb, labels, cats, c=1.0, seed=0)
    save_head(tmp_path / "head.npz", binary, category, 0.5, {"note": "test"})
    clf = HarmClassifier(tmp_path / "head.npz", embedder=FakeEmbedder())
    bad, good = clf.predict(["how to poison someone", "what is a normal pulse"])
    assert bad["harmful"] and not good["harmful"]
    assert bad["category"] in (3, 8) and bad["category_name"] == HARM_CATEGORIES[bad["category"]][0]
    assert (tmp_path / "head.json").exists()


def test_shipped_head_on_held_out_shared_rows(shared_data):
    """A sample of the test split (never trained on, never used for the threshold)."""
    corpus = build_corpus(shared_data, seed=0)
    rows = corpus.rows["test"]
    harmful = [r[0] for r in rows if r[3] == "medsafetybench"][::4]
    benign = [r[0] for r in rows if r[3] == "medmcqa"][::10]
    clf = HarmClassifier()
    recall = np.mean([p["harmful"] for p in clf.predict(harmful)])
    fpr = np.mean([p["harmful"] for p in clf.predict(benign)])
    assert recall >= 0.9 and fpr <= 0.03, (recall, fpr)
