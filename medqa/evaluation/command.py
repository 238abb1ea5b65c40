"""The `medqa evaluate` command's core: typed settings in; data read, model loaded, questions
scored, report files written. The CLI, the demo and the tests call `run_evaluation`.

All numbers come from `runner` (MCQ), `generation` (explanations) and
`analysis` (error patterns); this module only wires files and models together.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from medqa.console import err

MAX_REJECTIONS_LISTED = 20
DEFAULT_OUTPUT_DIR = "runs/eval"


@dataclass(frozen=True)
class EvaluateSettings:
    """One evaluation (the `medqa evaluate` flags; their help is in `evaluation/cli.py`)."""

    data: str
    model: Optional[str] = None  # default: the adapter's base model, else smollm2-135m
    adapter: Optional[str] = None
    limit: Optional[int] = None
    output: Optional[str] = None  # default: DEFAULT_OUTPUT_DIR/<model>-<time>/report.json
    method: str = "letter"
    batch_size: int = 8
    load_in_4bit: bool = False
    consistency: int = 100
    generation: int = 0
    max_new_tokens: int = 96
    threads: Optional[int] = None
    run_dir: Optional[str] = None
    plots: bool = True


def load_eval_records(src: str, limit: Optional[int]) -> tuple[list, dict]:
    """Valid, labelled records (first `limit`) and a summary of what was left out.

    Malformed rows are counted and listed with their reasons, never fatal.
    """
    from medqa.data.sources import read_records

    records, rejections = read_records(src)
    labelled = [r for r in records if r.answer_index is not None]
    if limit is not None:
        labelled = labelled[:limit]
    if not labelled:
        raise ValueError(f"{src}: no valid rows with an answer to evaluate ({len(rejections)} rejected)")
    data_summary = dict(
        source=src,
        rows_valid=len(records),
        unlabelled=len(records) - len([r for r in records if r.answer_index is not None]),
        rejected=len(rejections),
        rejections=[_rejection_dict(r) for r in rejections[:MAX_REJECTIONS_LISTED]],
        limit=limit,
    )
    return labelled, data_summary


def _rejection_dict(rejection) -> dict:
    row = rejection.to_dict() if hasattr(rejection, "to_dict") else dict(rejection.__dict__)
    row.pop("raw", None)  # the raw row may be large; line and reason locate it
    return row


def adapter_base_model(adapter: str) -> Optional[str]:
    config = Path(adapter) / "adapter_config.json"
    if not config.exists():
        raise FileNotFoundError(f"{adapter}: not a LoRA adapter directory (no adapter_config.json)")
    return json.loads(config.read_text()).get("base_model_name_or_path")


def load_model_for_eval(model_name: Optional[str], adapter: Optional[str], load_in_4bit: bool):
    """(model, tokenizer, resolved model name): full precision unless asked otherwise."""
    from medqa.config import ModelConfig
    from medqa.modeling.loading import load_model, load_tokenizer

    if model_name is None:
        model_name = (adapter and adapter_base_model(adapter)) or "smollm2-135m"
    cfg = ModelConfig(name=model_name, load_in_4bit=load_in_4bit)
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg)
    if adapter:
        from medqa.modeling.lora import load_adapter

        model = load_adapter(model, adapter)
    model.eval()
    return model, tokenizer, model_name


def default_output(model_name: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(model_name).name or model_name)
    return Path(DEFAULT_OUTPUT_DIR) / f"{slug}-{time.strftime('%Y%m%d-%H%M%S')}" / "report.json"


def run_evaluation(settings: EvaluateSettings) -> tuple[dict, dict]:
    """(summary, report): the summary is what `medqa evaluate` prints last; the report is the
    JSON written to `settings.output` (the Markdown report and plots go beside it)."""
    from medqa.evaluation.analysis import error_analysis
    from medqa.evaluation.runner import evaluate_model

    s = settings
    started = time.perf_counter()
    if s.threads:
        import torch

        torch.set_num_threads(s.threads)
    records, data_summary = load_eval_records(s.data, s.limit)
    if data_summary["rejected"]:
        err.print(f"[yellow]{data_summary['rejected']} malformed row(s) skipped[/] (listed in the report)")
    err.print(f"evaluating {len(records)} question(s) from {s.data}")
    model, tokenizer, model_name = load_model_for_eval(s.model, s.adapter, s.load_in_4bit)
    report, _ = evaluate_model(
        model, tokenizer, records, method=s.method, batch_size=s.batch_size,
        consistency_n=s.consistency, progress=True,
    )
    report.update(model=model_name, adapter=s.adapter, load_in_4bit=s.load_in_4bit, data=data_summary)
    if s.generation:
        from medqa.evaluation.generation import evaluate_generation

        report["generation"] = evaluate_generation(
            model, tokenizer, records, s.generation, max_new_tokens=s.max_new_tokens, progress=True
        )
    report["error_analysis"] = error_analysis(report, records)
    report["seconds_wall"] = time.perf_counter() - started  # data, model load, scoring, extras
    output = Path(s.output) if s.output else default_output(model_name)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2, default=str) + "\n")
    summary = dict(accuracy=report["accuracy"], n=report["n"], report=str(output),
                   baselines=report["baselines"], ece=report["ece"],
                   seconds_per_question=report["seconds_per_question"], rejected=data_summary["rejected"])
    if s.plots:
        from medqa.evaluation.report import write_markdown_report

        summary["markdown"] = str(write_markdown_report(report, output.with_suffix(".md"), run_dir=s.run_dir))
    err.print(f"accuracy {report['accuracy']:.3f} on {report['n']} (chance {report['baselines']['chance']:.2f}, "
              f"majority {report['baselines']['majority']:.3f}); report: {output}")
    return summary, report
