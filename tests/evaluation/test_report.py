"""Markdown report, plots, training curves, model card and error analysis."""

import json

from medqa.evaluation.analysis import error_analysis
from medqa.evaluation.report import load_training_history, write_markdown_report, write_model_card
from medqa.evaluation.runner import build_report, prediction_rows
from medqa.modeling.scoring import make_score

PNG = b"\x89PNG\r\n\x1a\n"


def synthetic_report(records):
    # Always "A" with high confidence: a position-biased, over-confident model.
    scores = [make_score([-0.1, -3.0, -3.0, -3.0], [5, 5, 5, 5], "letter") for _ in records]
    report = build_report(records, scores, seconds=1.0)
    report["predictions"] = prediction_rows(records, scores)
    report["error_analysis"] = error_analysis(report, records)
    report.update(model="tiny-random", data=dict(source="test.jsonl", rejected=0))
    return report


def test_error_analysis_finds_position_bias_and_overconfidence(records):
    report = synthetic_report(records)
    patterns = {p["pattern"]: p for p in report["error_analysis"]["patterns"]}
    wrong = sum(r.answer_index != 0 for r in records)
    assert patterns["position_bias"]["count"] == wrong and "predicts A" in patterns["position_bias"]["detail"]
    assert patterns["overconfident"]["count"] == wrong
    assert "low_confidence" not in patterns
    assert all(p["suggestion"] for p in patterns.values())


def test_markdown_report_with_plots_and_training_curves(tmp_path, records):
    run_dir = tmp_path / "run" / "checkpoint_000001" / "checkpoint"
    run_dir.mkdir(parents=True)
    history = [dict(step=1, loss=2.5), dict(step=2, loss=2.0), dict(step=2, eval_loss=2.2, eval_accuracy=0.3),
               dict(step=3, loss=1.7)]
    (run_dir / "trainer_state.json").write_text(json.dumps(dict(log_history=history, global_step=3)))
    assert [r["step"] for r in load_training_history(tmp_path / "run")] == [1, 2, 2, 3]
    md = write_markdown_report(synthetic_report(records), tmp_path / "rep" / "report.md", run_dir=str(tmp_path / "run"))
    text = md.read_text()
    assert "majority baseline" in text and "## Error analysis" in text and "position_bias" in text
    for name in ("per_subject", "reliability", "coverage", "confusion", "training_curves"):
        path = tmp_path / "rep" / "report_plots" / f"{name}.png"
        assert path.read_bytes()[:8] == PNG
        assert f"report_plots/{name}.png" in text


def test_training_history_from_progress_csv(tmp_path):
    (tmp_path / "progress.csv").write_text("epoch,eval_loss,loss,step\n0.5,,2.1,1\n1.0,1.9,,2\n")
    assert load_training_history(tmp_path) == [dict(epoch=0.5, loss=2.1, step=1.0),
                                               dict(epoch=1.0, eval_loss=1.9, step=2.0)]


def test_model_card(tmp_path, records):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps(dict(base_model_name_or_path="smollm2-135m", r=8,
                                                                 lora_alpha=16, lora_dropout=0.05,
                                                                 target_modules=["q_proj"])))
    (adapter / "medqa_config.yaml").write_text("data:\n  source: sample\n  augment_factor: 2\nlora:\n  r: 8\n")
    card = write_model_card(adapter, eval_report=synthetic_report(records),
                            safety_report={"blocked_rate": 1.0}).read_text()
    assert card.startswith("---\nlibrary_name: peft\nbase_model: smollm2-135m")
    assert "Not for clinical use" in card and "source: `sample`" in card
    assert "majority baseline" in card and "blocked_rate" in card
    bare = write_model_card(adapter, output=tmp_path / "card.md").read_text()
    assert "Not evaluated yet" in bare and "No safety evaluation" in bare
