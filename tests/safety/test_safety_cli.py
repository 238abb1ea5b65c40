"""`medqa safety ...` in-process, plus one real subprocess of the installed command."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from medqa.cli import main


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_check(capsys):
    assert main(["safety", "check", "--no-classifier", "I took 30 tablets of Tylenol an hour ago"]) == 0
    report = _last_json(capsys)
    assert report["risk_level"] == 3 and "emergency" in report["categories"]


def test_check_with_medications(capsys):
    assert main(["safety", "check", "--no-classifier", "Can I take Aleve?", "--medications", "lithium"]) == 0
    assert _last_json(capsys)["categories"] == ["drug_interaction"]


def test_interactions(capsys):
    assert main(["safety", "interactions", "Coumadin", "ADVIL", "amoxicillin"]) == 0
    [pair] = _last_json(capsys)
    assert (pair["drug_a"], pair["drug_b"], pair["severity"]) == ("ibuprofen", "warfarin", "major")
    assert pair["description"]


def test_interactions_none(capsys):
    assert main(["safety", "interactions", "paracetamol", "amoxicillin"]) == 0
    assert _last_json(capsys) == []


def test_interactions_with_ddinter(tmp_path, capsys):
    csv = tmp_path / "dd.csv"
    csv.write_text("DDInterID_A,Drug_A,DDInterID_B,Drug_B,Level\nDDI1,Abacavir,DDI2,Zoledronic acid,Minor\n")
    assert main(["safety", "interactions", "abacavir", "zoledronic acid", "--ddinter", str(csv)]) == 0
    assert [p["severity"] for p in _last_json(capsys)] == ["minor"]


def test_classify(tmp_path, capsys):
    rows = [{"id": 1, "q": "My son swallowed bleach"}, {"id": 2, "q": "What is the normal heart rate?"},
            {"id": 3, "q": "Levothyroxine 100 mg daily"}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["safety", "classify", "--no-classifier", "--input", str(src), "--text-field", "q",
                 "--output", str(out)]) == 0
    summary = _last_json(capsys)
    assert summary["rows"] == 3 and summary["emergency"] == 1
    reports = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["risk_level"] for r in reports] == [3, 0, 2]
    assert all({"blocked", "risk_level", "categories", "warnings"} <= set(r) for r in reports)


def test_classify_missing_field_is_a_user_error(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"text": "hi"}) + "\n")
    assert main(["safety", "classify", "--no-classifier", "--input", str(src), "--text-field", "q",
                 "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "no text field 'q'" in capsys.readouterr().err


@pytest.mark.slow
def test_installed_command_with_classifier():
    medqa = Path(sys.executable).with_name("medqa")
    out = subprocess.run([str(medqa), "safety", "check", "How can I forge a prescription for Xanax?"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    report = json.loads(out.strip().splitlines()[-1])
    assert report["blocked"] is True and "harmful_request" in report["categories"]


def test_check_with_patient_context_json(capsys):
    context = json.dumps({"age": 4, "allergies": ["penicillin"], "conditions": ["asthma"]})
    assert main(["safety", "check", "--no-classifier",
                 "Give him amoxicillin, propranolol and ibuprofen 400 mg every 6 hours", "--context", context]) == 0
    report = _last_json(capsys)
    kinds = {c["kind"] for c in report["findings"]["contraindications"]}
    assert {"allergy", "condition"} <= kinds and "dosage" in report["categories"]


@pytest.mark.parametrize("context, message", [
    ('{"age": 4, "wieght_kg": 16}', "wieght_kg"),
    ('{"age": -1}', "age"),
    ("not json", "not valid JSON"),
])
def test_bad_patient_context_is_a_user_error(capsys, context, message):
    assert main(["safety", "check", "--no-classifier", "hello", "--context", context]) == 2
    assert message in capsys.readouterr().err


def test_classify_creates_the_output_folder(tmp_path, capsys):
    src, out = tmp_path / "in.jsonl", tmp_path / "new" / "folder" / "out.jsonl"
    src.write_text(json.dumps({"q": "My son swallowed bleach"}) + "\n")
    assert main(["safety", "classify", "--no-classifier", "--input", str(src), "--text-field", "q",
                 "--output", str(out)]) == 0
    assert json.loads(out.read_text())["risk_level"] == 3
