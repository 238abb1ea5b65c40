"""`medqa demo`: the whole system end to end on one local Ray.

preprocess → zero-shot evaluation → short ASHA search → QLoRA fine-tuning with
the best config on 2 workers → evaluation after → the Serve graph with sample
requests → a Markdown report with plots in the run directory.

Each stage calls the same functions as its own command, so the demo shows what
`medqa preprocess`, `tune`, `train`, `evaluate` and `serve` do, in one place.
The held-out questions are removed from the training data by the pipeline's
contamination check, so "after" is measured on questions training never saw.

May import: config, console, data, demo_report, evaluation, runtime, serving, training, tuning, ray.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from medqa.console import emit_json, err

SAMPLE_REQUESTS = [
    ("general", "/generate",
     {"question": "What is the first-line treatment for uncomplicated hypertension?", "max_length": 48,
      "temperature": 0.0}),
    ("multiple choice", "/v1/mcq",
     {"question": "Which vitamin deficiency causes scurvy?",
      "options": ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"]}),
    ("drug interaction", "/generate",
     {"question": "Can I take ibuprofen while I am on warfarin?", "max_length": 48, "temperature": 0.0}),
    ("emergency", "/generate",
     {"question": "My father has crushing chest pain spreading to his left arm and is sweating.", "max_length": 48}),
]


# The fine-tuning run after the search: the winner's hyperparameters, longer, on 2 workers.
FINAL_TRAINING = ["training.num_workers=2", "training.max_steps=24", "training.eval_steps=8", "training.save_steps=8"]


@dataclass
class DemoRun:
    """Everything the report needs, filled stage by stage."""

    run_dir: Path
    stages: list[dict] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str, fn: Callable[[], Any]) -> Any:
        started = time.perf_counter()
        # Library chatter (Ray Data progress, Tune's trial tables) goes to the
        # run's log file; the terminal shows one line per stage.
        with err.status(f"[bold]{name}[/bold] ..."), open(self.run_dir / "demo.log", "a") as log, \
                contextlib.redirect_stdout(log):
            value = fn()
        seconds = time.perf_counter() - started
        self.stages.append({"stage": name, "seconds": round(seconds, 1)})
        err.print(f"[green]✓[/green] {name} ({seconds:.0f} s)")
        return value


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole system end to end on the embedded model and a local Ray")
    p.add_argument("--data", default="sample", help="training data (default: the shipped sample)")
    p.add_argument("--holdout", type=int, default=12, help="questions held out for before/after accuracy")
    p.add_argument("--output", default=None, help="run directory (default: runs/demo-<time>)")
    p.add_argument("--config", default="jobs/configs/demo.yaml", help="demo config (model, training, tuning)")
    p.set_defaults(func=run_demo)


# ---------------------------------------------------------------- stages


def split_holdout(src: str, n: int, seed: int, out_dir: Path) -> tuple[Path, int]:
    """Write `n` random labelled rows of `src` to a MedMCQA-schema file for evaluation."""
    from medqa.data.sources import read_records

    records, _ = read_records(src)
    labelled = [r for r in records if r.answer_index is not None]
    random.Random(seed).shuffle(labelled)
    path = out_dir / "holdout.jsonl"
    with path.open("w") as f:
        for r in labelled[:n]:
            row = dict(id=r.id, question=r.question, opa=r.options[0], opb=r.options[1], opc=r.options[2],
                       opd=r.options[3], cop=r.answer_index, exp=r.explanation, subject_name=r.subject)
            f.write(json.dumps(row) + "\n")
    return path, min(n, len(labelled))


def evaluate(model: str, adapter: Optional[str], data: Path, out: Path) -> dict:
    """`medqa evaluate`'s core on the holdout, every question also scored with its options rotated;
    a trained adapter is also judged by the calibration training wrote beside it."""
    from medqa.evaluation.calibrate import ARTEFACT_NAME
    from medqa.evaluation.command import EvaluateSettings, run_evaluation

    calibration = Path(adapter) / ARTEFACT_NAME if adapter else None
    settings = EvaluateSettings(data=str(data), model=model, adapter=adapter, output=str(out / "report.json"),
                                consistency=sys.maxsize,
                                calibration=str(calibration) if calibration and calibration.exists() else None)
    return run_evaluation(settings)[1]


def tune(config_path: Path) -> dict:
    from medqa.config import load_config
    from medqa.tuning.search import run_search

    return run_search(load_config(config_path))


def train(best_config: str, overrides: list[str]) -> dict:
    from medqa.config import load_config
    from medqa.training.driver import fit

    return fit(load_config(best_config, overrides))


def serve_and_ask(model: str, adapter: str, port: int) -> list[dict]:
    """Deploy the Serve graph with the fine-tuned adapter, send the sample requests, shut down."""
    import requests
    from ray import serve

    from medqa.serving.app import BuildArgs, build_app

    serve.start(http_options={"host": "127.0.0.1", "port": port})
    try:
        serve.run(build_app(BuildArgs(model=model, adapter=adapter, num_replicas=1)), name="medqa-demo",
                  route_prefix="/")
        return [_ask(requests, port, *request) for request in SAMPLE_REQUESTS]
    finally:
        serve.shutdown()


def _ask(requests, port: int, kind: str, path: str, body: dict) -> dict:
    started = time.perf_counter()
    response = requests.post(f"http://127.0.0.1:{port}{path}", json=body, timeout=300)
    latency_ms = (time.perf_counter() - started) * 1000
    payload = response.json()
    report = payload.get("safety_report") or {}
    answer = payload.get("response") or payload.get("answer_letter") or payload.get("error")
    return {
        "kind": kind,
        "endpoint": path,
        "status": response.status_code,
        "answer": str(answer)[:160],
        "risk_level": report.get("risk_level"),
        "categories": report.get("categories", []),
        "actions": report.get("actions", []),
        "latency_ms": round(latency_ms, 1),
    }


# ---------------------------------------------------------------- report


def write_report(run: DemoRun) -> Path:
    from medqa.demo_report import render

    # The raw results first, so a report problem never loses the run's figures.
    (run.run_dir / "results.json").write_text(json.dumps({"results": run.results, "stages": run.stages}, indent=2,
                                                         default=str))
    path = run.run_dir / "report.md"
    path.write_text(render(run.run_dir, run.results, run.stages))
    return path


def _send_library_logs_to(path: Path) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    for name in ("ray", "transformers", "datasets", "peft", "DeepSpeed"):
        logger = logging.getLogger(name)
        logger.handlers, logger.propagate = [handler], False


def run_demo(args) -> int:
    from medqa import runtime
    from medqa.config import load_config, save_config

    run = DemoRun(Path(args.output or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}").resolve())
    run.run_dir.mkdir(parents=True, exist_ok=True)
    err.print(f"[bold]medqa demo[/bold] → {run.run_dir}  (not for clinical use)")
    cfg = load_config(args.config, [f"data.source={args.data}"])
    holdout, n_holdout = split_holdout(cfg.data.source, args.holdout, cfg.seed, run.run_dir)
    cfg = load_config(args.config, [
        f"data.source={args.data}", f"data.eval_source={holdout}", f"data.output_dir={run.run_dir / 'data'}",
        f"training.storage_path={run.run_dir / 'ray'}",
    ])
    config_path = save_config(cfg, run.run_dir / "config.yaml")
    _send_library_logs_to(run.run_dir / "demo.log")
    with runtime.session(num_cpus=4, worker_logs=False):
        _run_stages(run, cfg, config_path, holdout)
    report = write_report(run)
    from medqa.demo_report import print_summary

    print_summary(run.results, err)
    err.print(f"report: {report}")
    emit_json({"run_dir": str(run.run_dir), "report": str(report), "holdout": n_holdout,
               **{k: run.results[k] for k in ("accuracy_before", "accuracy_after") if k in run.results}})
    return 0


def _run_stages(run: DemoRun, cfg, config_path: Path, holdout: Path) -> None:
    from medqa.data.preprocess import preprocess_on_ray

    model = cfg.model.name
    run.results["data"] = run.stage("preprocess (Ray Data)", lambda: preprocess_on_ray(cfg))
    before = run.stage("evaluate zero-shot", lambda: evaluate(model, None, holdout, run.run_dir / "eval_before"))
    run.results["accuracy_before"] = before["accuracy"]
    search = run.stage("ASHA search (Ray Tune)", lambda: tune(config_path))
    run.results["tune"] = search
    overrides = [f"training.storage_path={run.run_dir / 'ray'}", "training.run_name=final", *FINAL_TRAINING]
    trained = run.stage("QLoRA fine-tuning (Ray Train, 2 workers)", lambda: train(search["best_config"], overrides))
    run.results["train"] = trained
    after = run.stage("evaluate fine-tuned",
                      lambda: evaluate(model, trained["checkpoint"], holdout, run.run_dir / "eval_after"))
    run.results["accuracy_after"] = after["accuracy"]
    run.results["baselines"] = after["baselines"]
    run.results["requests"] = run.stage("serve + sample requests (Ray Serve)",
                                        lambda: serve_and_ask(model, trained["checkpoint"], cfg.serving.port))
