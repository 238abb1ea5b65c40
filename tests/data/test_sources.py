"""Readers: every file format, both MedMCQA cop bases, MedQA-USMLE rows, the hub path, the sample."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_helpers import write_jsonl
from medqa.data.sources import detect_cop_base, read_records

MEDMCQA = {"id": "x1", "question": "Which nerve supplies the deltoid?", "opa": "Radial", "opb": "Axillary",
           "opc": "Ulnar", "opd": "Median", "cop": 1, "choice_type": "single", "exp": "Axillary nerve (C5, C6).",
           "subject_name": "Anatomy", "topic_name": None}
MEDQA = {"question": "A 30-year-old presents with fever. Most likely diagnosis?",
         "options": {"A": "Malaria", "B": "Dengue", "C": "Typhoid", "D": "Influenza"},
         "answer_idx": "C", "answer": "Typhoid", "meta_info": "step1"}


def _write(tmp_path, fmt: str, rows: list[dict]):
    path = tmp_path / f"rows.{fmt}"
    if fmt == "jsonl":
        write_jsonl(path, rows)
    elif fmt == "json":
        path.write_text(json.dumps(rows))
    elif fmt == "csv":
        with path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "parquet"])
def test_every_format_reads_the_same_records(tmp_path, dev_rows, fmt):
    rows = dev_rows[:60]
    records, rejections = read_records(str(_write(tmp_path, fmt, rows)))
    reference, _ = read_records(str(_write(tmp_path, "jsonl", rows)))
    assert len(records) + len(rejections) == 60
    assert [(r.id, r.question, r.options, r.answer_index, r.explanation, r.subject, r.topic) for r in records] == \
        [(r.id, r.question, r.options, r.answer_index, r.explanation, r.subject, r.topic) for r in reference]
    assert records[0].answer_index == rows[0]["cop"]


def test_medmcqa_zero_based_hub_rows(tmp_path, dev_rows):
    records, rejections = read_records(str(_write(tmp_path, "jsonl", dev_rows)))
    assert len(records) + len(rejections) == 3183
    by_id = {r["id"]: r for r in dev_rows}
    assert all(r.answer_index == by_id[r.id]["cop"] for r in records)
    assert Counter(r.answer_letter for r in records)["A"] > 900


def test_medmcqa_one_based_original_release_is_detected(tmp_path, dev_rows):
    shifted = [{**r, "cop": r["cop"] + 1} for r in dev_rows[:400]]
    assert detect_cop_base(shifted) == 1
    records, _ = read_records(str(_write(tmp_path, "jsonl", shifted)))
    by_id = {r["id"]: r for r in dev_rows}
    assert records and all(r.answer_index == by_id[r.id]["cop"] for r in records)
    # An explicit base wins over detection.
    assert read_records(str(_write(tmp_path, "jsonl", dev_rows[:50])), cop_base=1)[1]


def test_detect_cop_base_rule():
    assert detect_cop_base([{"cop": c} for c in (1, 2, 3, 4)]) == 1
    assert detect_cop_base([{"cop": c} for c in (0, 1, 2, 3)]) == 0
    assert detect_cop_base([{"cop": c} for c in (0, 4)]) == 0  # ambiguous: stay 0-based, 4 is rejected
    assert detect_cop_base([{"cop": "4"}, {"cop": "2"}]) == 1  # CSV text


def test_medqa_usmle_rows(tmp_path):
    five = {**MEDQA, "options": {**MEDQA["options"], "E": "Leptospirosis"}}
    wrong = {**MEDQA, "answer": "Malaria"}
    listed = {**MEDQA, "options": ["Malaria", "Dengue", "Typhoid", "Influenza"]}
    records, rejections = read_records(str(_write(tmp_path, "jsonl", [MEDQA, five, wrong, listed, MEDMCQA])))
    assert [(r.answer_index, r.answer_text) for r in records] == [(2, "Typhoid"), (2, "Typhoid"), (1, "Axillary")]
    assert records[0].topic == "step1"
    assert [(j.line_no, j.reason) for j in rejections] == [(2, "unsupported_option_count"), (3, "answer_mismatch")]


def test_csv_medqa_options_as_json_text(tmp_path):
    row = {**MEDQA, "options": json.dumps(MEDQA["options"])}
    records, rejections = read_records(str(_write(tmp_path, "csv", [row])))
    assert not rejections and records[0].options[2] == "Typhoid"


def test_hub_id_goes_through_datasets_load_dataset(tmp_path, dev_rows, monkeypatch):
    import datasets

    local = _write(tmp_path, "jsonl", dev_rows[:25])
    calls = []
    real_load_dataset = datasets.load_dataset

    def fake_load_dataset(name, split=None, **kw):  # no network: serve a local dataset
        calls.append((name, split))
        return real_load_dataset("json", data_files=str(local), split="train")

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    records, _ = read_records("openlifescienceai/medmcqa:validation")
    assert calls == [("openlifescienceai/medmcqa", "validation")]
    assert [r.id for r in records] == [r["id"] for r in dev_rows[:25] if r["id"] in {x.id for x in records}]
    assert len(records) >= 24
    read_records("openlifescienceai/medmcqa")
    assert calls[-1] == ("openlifescienceai/medmcqa", "train")


def test_saved_dataset_directory(tmp_path, dev_rows):
    import datasets

    datasets.Dataset.from_list(dev_rows[:30]).save_to_disk(str(tmp_path / "saved"))
    records, rejections = read_records(str(tmp_path / "saved"))
    assert len(records) + len(rejections) == 30 and records[0].id == dev_rows[0]["id"]


def test_sample_ships_with_the_package():
    records, rejections = read_records("sample")
    assert not rejections and len(records) >= 48
    assert len({r.subject for r in records}) >= 6
    assert all(r.explanation for r in records)
    counts = Counter(r.answer_letter for r in records)
    assert max(counts.values()) - min(counts.values()) <= 2


def test_missing_source_and_bad_suffix(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_records(str(tmp_path / "nope.jsonl"))
    (tmp_path / "rows.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_records(str(tmp_path / "rows.txt"))
