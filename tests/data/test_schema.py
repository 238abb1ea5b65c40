"""Validation: every reason, on a copy of real rows with corrupted rows mixed in."""

from __future__ import annotations

import json

import pytest

from data_helpers import clean_rows, data_config, write_jsonl
from medqa.data.schema import REASONS, Limits, Rejection, validate_row
from medqa.data.sources import read_records

LIMITS = Limits(max_question_chars=600, max_option_chars=300)


def corruptions(base: dict) -> list[tuple[str, object]]:
    """(expected reason, corrupted row or raw line) — one per reason and a few variants."""
    medqa = {"question": base["question"],
             "options": {k: base[o] for k, o in zip("ABCD", ("opa", "opb", "opc", "opd"))},
             "answer_idx": "B", "answer": base["opb"]}
    drop = lambda key: {k: v for k, v in base.items() if k != key}  # noqa: E731
    return [
        ("unparseable", '{"question": "truncated row", "opa": '),
        ("unparseable", "[1, 2, 3]"),
        ("missing_question", drop("question")),
        ("missing_question", {**base, "question": None}),
        ("blank_question", {**base, "question": "   \t "}),
        ("missing_option", drop("opc")),
        ("missing_option", {**base, "opd": None}),
        ("blank_option", {**base, "opb": "  "}),
        ("duplicate_options", {**base, "opd": "  " + base["opa"].upper() + " "}),
        ("missing_answer", drop("cop")),
        ("answer_not_integer", {**base, "cop": "two"}),
        ("answer_not_integer", {**base, "cop": 1.5}),
        ("answer_out_of_range", {**base, "cop": 7}),
        ("answer_out_of_range", {**base, "cop": -1}),
        ("question_too_long", {**base, "question": "why " * 200}),
        ("option_too_long", {**base, "opc": "x" * 301}),
        ("unsupported_option_count", {**medqa, "options": {**medqa["options"], "E": "fifth"}}),
        ("answer_mismatch", {**medqa, "answer": "something else"}),
        ("answer_out_of_range", {**medqa, "answer_idx": "E"}),
    ]


def test_every_reason_is_covered():
    row = {"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}
    assert {reason for reason, _ in corruptions(row)} == set(REASONS)


def test_valid_row_passes():
    row = {"question": " Q? ", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": "2", "exp": None}
    rec = validate_row(row)
    assert not isinstance(rec, Rejection)
    assert (rec.question, rec.answer_index, rec.explanation, rec.subject) == ("Q?", 2, "", "Unknown")


@pytest.fixture
def corrupted_file(tmp_path, dev_rows):
    """300 real rows with the corrupted rows interleaved; returns (path, clean rows, expected {line: reason})."""
    real = clean_rows(dev_rows[:300])
    bad = corruptions(real[0])
    lines, expected = [], {}
    for i, row in enumerate(real):
        lines.append(row)
        if i % 15 == 7 and bad:
            reason, corrupted = bad.pop(0)
            lines.append(corrupted)
            expected[len(lines)] = reason
    assert not bad
    return write_jsonl(tmp_path / "corrupted.jsonl", lines), real, expected


def test_each_corrupted_row_is_rejected_with_its_reason_and_nothing_else_is_lost(corrupted_file):
    path, real, expected = corrupted_file
    records, rejections = read_records(str(path), LIMITS)
    assert {j.line_no: j.reason for j in rejections} == expected
    assert [r.id for r in records] == [r["id"] for r in real]
    assert all(j.raw is not None and j.detail or j.reason in ("blank_question", "missing_question", "missing_answer")
               for j in rejections)


def test_pipeline_writes_the_same_rejects_with_raw_rows(tmp_path, corrupted_file, tiny_tokenizer):
    from medqa.data.preprocess import preprocess_in_process

    path, real, expected = corrupted_file
    cfg = data_config(tmp_path, path, "data.max_question_chars=600", "data.max_option_chars=300",
                      "data.near_duplicate_threshold=1.0")
    summary = preprocess_in_process(cfg, progress=False)
    rejects = [json.loads(line) for line in (tmp_path / "out" / "rejects.jsonl").read_text().splitlines()]
    assert {r["line_no"]: r["reason"] for r in rejects} == expected
    assert all(r["raw"] for r in rejects)  # the original line is kept for repair
    assert summary["rows_in"] == len(real) + len(expected)
    assert summary["rejected"] == len(expected)
    assert summary["rows_valid"] == len(real)


def test_strict_fails_fast(corrupted_file):
    path, _, expected = corrupted_file
    first = min(expected)
    with pytest.raises(ValueError, match=f"row {first}: rejected \\({expected[first]}\\)"):
        read_records(str(path), LIMITS, strict=True)
