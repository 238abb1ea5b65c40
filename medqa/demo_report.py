"""The demo's Markdown report and its terminal summary (pure: results in, text and PNGs out).

May import: evaluation (the training-curve plot), reporting.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from medqa.reporting import MISSING, markdown_table, percent, pyplot, save_figure

RISK_NAMES = {0: "none", 1: "low", 2: "high", 3: "critical"}


def _section(title: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    return [f"## {title}", ""] + markdown_table(header, rows) + [""]


def accuracy_rows(results: dict) -> list[list[Any]]:
    baselines = results.get("baselines", {})
    return [
        ["zero-shot (base model)", percent(results.get("accuracy_before"))],
        ["fine-tuned (base + LoRA)", percent(results.get("accuracy_after"))],
        ["chance", percent(baselines.get("chance"))],
        [f"majority answer position ({baselines.get('majority_letter', '?')})", percent(baselines.get("majority"))],
    ]


def request_rows(results: dict) -> list[list[Any]]:
    return [
        [r["kind"], r["endpoint"], r["status"], f"{r['risk_level']} ({RISK_NAMES.get(r['risk_level'], '?')})",
         ", ".join(r["categories"]) or MISSING, ", ".join(r["actions"]) or MISSING, f"{r['latency_ms']:.0f}",
         r["answer"][:80]]
        for r in results.get("requests", [])
    ]


def plot_accuracy(results: dict, path: Path) -> Path:
    plt = pyplot()
    rows = [(label, results_value) for label, results_value in (
        ("zero-shot", results.get("accuracy_before")), ("fine-tuned", results.get("accuracy_after")),
        ("chance", results.get("baselines", {}).get("chance")),
        ("majority", results.get("baselines", {}).get("majority")),
    ) if results_value is not None]
    fig, ax = plt.subplots(figsize=(5, 3))
    bars = ax.bar([r[0] for r in rows], [100 * r[1] for r in rows],
                  color=["#4c72b0", "#55a868", "#999999", "#bbbbbb"][: len(rows)])
    ax.bar_label(bars, fmt="%.0f%%")
    ax.set_ylabel("accuracy on held-out questions (%)")
    ax.set_ylim(0, 100)
    return save_figure(fig, path)


def plot_latency(results: dict, path: Path) -> Path:
    plt = pyplot()
    requests = results.get("requests", [])
    fig, ax = plt.subplots(figsize=(5, 3))
    bars = ax.barh([r["kind"] for r in requests], [r["latency_ms"] for r in requests], color="#4c72b0")
    ax.bar_label(bars, fmt="%.0f ms")
    ax.set_xlabel("end-to-end latency (ms)")
    return save_figure(fig, path)


def _training_plot(results: dict, run_dir: Path) -> Optional[Path]:
    from medqa.evaluation.report import load_training_history, plot_training_curves

    train_dir = results.get("train", {}).get("run_dir")
    if not train_dir:
        return None
    return plot_training_curves(load_training_history(train_dir), run_dir / "training_curves.png")


def render(run_dir: Path, results: dict, stages: list[dict]) -> str:
    plots = {"accuracy": plot_accuracy(results, run_dir / "accuracy.png")}
    if results.get("requests"):
        plots["latency"] = plot_latency(results, run_dir / "latency.png")
    training_plot = _training_plot(results, run_dir)
    if training_plot:
        plots["training curves"] = training_plot
    for path in results.get("tune", {}).get("plots") or []:
        plots[f"search: {Path(path).stem}"] = Path(path)
    data = results.get("data", {})
    lines = ["# medqa demo report", "",
             "_Not for clinical use: a demonstration on a small sample with a 135M model._", ""]
    lines += _section("Accuracy on held-out questions", ["model", "accuracy"], accuracy_rows(results))
    lines += _section("Data", ["rows in", "rows out", "rejected", "duplicates", "contaminated (held out)"],
                      [[data.get(k) for k in ("rows_in", "rows_out", "rejected", "duplicates", "contaminated")]])
    tune = results.get("tune", {})
    if tune:
        lines += ["## Search", "",
                  f"Best {tune.get('metric', 'metric')}: {tune.get('best_metric')} — "
                  f"config `{tune.get('best_config')}`, "
                  f"trials table `{tune.get('results')}`.", ""]
    lines += _section("Sample requests through the Serve graph",
                      ["request", "endpoint", "HTTP", "risk", "categories", "safety actions", "latency (ms)", "answer"],
                      request_rows(results))
    lines += _section("Stages", ["stage", "seconds"], [[s["stage"], s["seconds"]] for s in stages])
    lines += ["## Plots", ""] + [
        f"![{name}]({Path(p).resolve().relative_to(run_dir) if Path(p).resolve().is_relative_to(run_dir) else p})"
        for name, p in plots.items()]
    return "\n".join(lines) + "\n"


def print_summary(results: dict, console) -> None:
    """The terminal summary table (rich) of accuracies and sample requests."""
    from rich.table import Table

    accuracy = Table(title="Held-out accuracy")
    for column in ("model", "accuracy"):
        accuracy.add_column(column)
    for row in accuracy_rows(results):
        accuracy.add_row(*map(str, row))
    # Narrow enough for an 80-column log: the full rows are in report.md.
    requests = Table(title="Sample requests (Ray Serve, safety on)")
    for column in ("request", "risk", "safety actions", "ms", "answer"):
        requests.add_column(column, overflow="fold")
    for kind, _endpoint, _status, risk, _categories, actions, ms, answer in request_rows(results):
        requests.add_row(kind, risk, actions.replace("_appended", "").replace(", ", "\n"), ms, answer[:40])
    console.print(accuracy)
    console.print(requests)
