"""Fixtures for evaluation tests: small data files in the MedMCQA and MedQA-USMLE schemas."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def medmcqa_file(tmp_path):
    """A MedMCQA-schema JSONL file (rows written for the tests) with two malformed lines."""
    rows = []
    for i in range(12):
        rows.append(json.dumps(dict(
            id=f"q{i}", question=f"Test question number {i} about {'renal' if i % 2 else 'cardiac'} physiology?",
            opa=f"alpha {i}", opb=f"beta {i}", opc=f"gamma {i}", opd=f"delta {i}", cop=i % 4 if i % 3 else 0,
            choice_type="single", exp=f"Because of reason {i}." if i % 2 else None,
            subject_name="Physiology" if i % 2 else "Medicine", topic_name=None)))
    rows.insert(3, "{not json")
    rows.insert(7, json.dumps(dict(id="bad", question="No options here?", cop=1)))
    path = tmp_path / "medmcqa.jsonl"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def medqa_usmle_file(tmp_path):
    """MedQA-USMLE 4-option rows (illustrative, written for the tests)."""
    rows = []
    for i in range(5):
        options = {"A": f"Disease one {i}", "B": f"Disease two {i}", "C": f"Disease three {i}",
                   "D": f"Disease four {i}"}
        letter = "ABCD"[i % 4]
        rows.append(dict(question=f"A {30 + i}-year-old presents with symptom {i}. Which is the most likely diagnosis?",
                         options=options, answer_idx=letter, answer=options[letter], meta_info="step1"))
    path = tmp_path / "medqa_usmle.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path
