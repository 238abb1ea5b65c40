"""Stratified, seeded split; validation is never augmented; copies stay with their source."""

from __future__ import annotations

from collections import Counter

import pyarrow.parquet as pq

from data_helpers import clean_rows, data_config, write_jsonl
from medqa.data.steps import stratified_split


def test_stratified_split_per_subject_and_seeded():
    keys = [(i, s) for i, s in enumerate(["Anatomy"] * 50 + ["Pathology"] * 30 + ["Rare"] * 3)]
    split = stratified_split(keys, 0.2, seed=1)
    val = Counter(s for i, s in keys if split[i] == "validation")
    assert val == {"Anatomy": 10, "Pathology": 6, "Rare": 1}
    assert split == stratified_split(list(reversed(keys)), 0.2, seed=1)  # order-independent
    assert split != stratified_split(keys, 0.2, seed=2)
    assert all(v == "train" for v in stratified_split(keys, 0.0, seed=1).values())


def test_outputs_keep_copies_in_their_source_split(tmp_path, dev_rows, tiny_tokenizer):
    from medqa.data.preprocess import preprocess_in_process

    rows = clean_rows(dev_rows[:400])
    cfg = data_config(tmp_path, write_jsonl(tmp_path / "d.jsonl", rows), "data.augment_factor=3",
                      "data.val_fraction=0.2")
    summary = preprocess_in_process(cfg, progress=False)
    train = pq.read_table(tmp_path / "out" / "train").to_pylist()
    val = pq.read_table(tmp_path / "out" / "validation").to_pylist()
    assert all(r["aug"] == 0 and "#aug" not in r["id"] for r in val)
    base = lambda r: r["id"].split("#aug")[0]  # noqa: E731
    assert not {base(r) for r in train} & {base(r) for r in val}
    assert Counter(base(r) for r in train).most_common(1)[0][1] == 3
    assert len(train) == summary["train_rows"] and len(val) == summary["validation_rows"]
    per_subject = summary["per_subject"]
    assert all(c["validation"] == round((c["train"] + c["validation"]) * 0.2) for c in per_subject.values())
    assert Counter(r["subject"] for r in val) == {s: c["validation"] for s, c in per_subject.items() if c["validation"]}
    assert Counter(r["subject"] for r in train) == {s: c["train_augmented"] for s, c in per_subject.items()}
    shares = summary["answer_share_after"].values()
    assert all(abs(s - 0.25) <= 0.05 for s in shares)
    # Every stored row rebuilds into a record whose answer text is the source's.
    by_id = {r["id"]: r for r in rows}
    for r in train[:200]:
        src = by_id[base(r)]
        assert r["options"][r["answer_index"]] == src[("opa", "opb", "opc", "opd")[src["cop"]]]
