"""`medqa evaluate` end to end on the tiny model: report contents, --limit, bad rows, files."""

import json
from pathlib import Path

import pytest

from medqa.cli import main


def run_cli(capsys, *args):
    code = main(["evaluate", "--model", "tiny-random", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err[-2000:]
    return code, json.loads(captured.out.strip().splitlines()[-1])


def test_evaluate_writes_report_with_required_fields(capsys, tmp_path, medmcqa_file):
    output = tmp_path / "out" / "report.json"
    code, summary = run_cli(capsys, "--data", str(medmcqa_file), "--output", str(output), "--consistency", "4",
                            "--batch-size", "3")
    assert code == 0
    report = json.loads(output.read_text())
    assert summary["report"] == str(output) and summary["n"] == report["n"] == 12
    assert summary["accuracy"] == report["accuracy"] == pytest.approx(report["n_correct"] / 12)
    # per-subject counts add up to n and each subject carries an accuracy
    assert sum(v["n"] for v in report["per_subject"].values()) == report["n"]
    assert set(report["per_subject"]) == {"Physiology", "Medicine"}
    assert all(0 <= v["accuracy"] <= 1 for v in report["per_subject"].values())
    answers = [p["answer"] for p in report["predictions"]]
    assert report["baselines"]["chance"] == 0.25
    assert report["baselines"]["majority"] == pytest.approx(max(answers.count(k) for k in range(4)) / 12)
    assert 0 <= report["ece"] <= 1
    assert sum(map(sum, report["confusion"]["matrix"])) == 12
    assert report["permutation_consistency"]["n"] == 4
    assert report["coverage"][0]["coverage"] == 1.0 and report["coverage"][0]["accuracy"] == report["accuracy"]
    assert report["seconds_per_question"] > 0
    # malformed rows: counted and listed with their reasons, not fatal
    assert report["data"]["rejected"] == 2 and summary["rejected"] == 2
    assert {r["line_no"] for r in report["data"]["rejections"]} == {4, 8}
    # Markdown report and plots beside the JSON
    md = Path(summary["markdown"])
    assert md.exists() and "## Per subject" in md.read_text()
    for name in ("per_subject", "reliability", "coverage", "confusion"):
        png = output.parent / "report_plots" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_limit_is_honoured(capsys, tmp_path, medmcqa_file):
    code, summary = run_cli(capsys, "--data", str(medmcqa_file), "--limit", "5", "--output", str(tmp_path / "r.json"),
                            "--consistency", "0", "--no-plots")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and summary["n"] == report["n"] == 5 and len(report["predictions"]) == 5
    assert [p["id"] for p in report["predictions"]] == ["q0", "q1", "q2", "q3", "q4"]
    assert report["permutation_consistency"] is None


def test_medqa_usmle_rows_load_and_score(capsys, tmp_path, medqa_usmle_file):
    code, summary = run_cli(capsys, "--data", str(medqa_usmle_file), "--output", str(tmp_path / "r.json"),
                            "--method", "text", "--no-plots", "--consistency", "2")
    report = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and report["n"] == 5 and report["method"] == "text"
    assert [p["answer"] for p in report["predictions"]] == [0, 1, 2, 3, 0]  # answer_idx letters
    assert report["data"]["rejected"] == 0


def test_no_valid_rows_is_a_clear_error(capsys, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{broken\n")
    assert main(["evaluate", "--model", "tiny-random", "--data", str(bad)]) == 2
    assert "no valid rows" in capsys.readouterr().err


def test_limit_must_be_positive(capsys, medmcqa_file):
    with pytest.raises(SystemExit):
        main(["evaluate", "--data", str(medmcqa_file), "--limit", "0"])


@pytest.mark.slow
def test_real_smollm2_on_public_rows(tmp_path, shared_data):
    """The real embedded model, as a user runs it (subprocess, offline), on 20 public rows."""
    import os
    import subprocess
    import sys

    output = tmp_path / "smollm2.json"
    proc = subprocess.run(
        [sys.executable, "-m", "medqa", "evaluate", "--model", "smollm2-135m", "--data",
         str(shared_data / "medmcqa_dev_public.jsonl"), "--limit", "20", "--output", str(output), "--consistency", "5"],
        capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    report = json.loads(output.read_text())
    assert summary["n"] == report["n"] == 20
    assert 0 <= report["accuracy"] <= 1 and report["baselines"]["chance"] == 0.25
    assert sum(v["n"] for v in report["per_subject"].values()) == 20
    assert (tmp_path / "smollm2_plots" / "reliability.png").exists()
