"""Human-readable outputs: a Markdown evaluation report with PNG plots, training
curves from a run directory, and a model card for an exported adapter.

Plots, tables, percentages and CSV come from `medqa.reporting`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from medqa.reporting import markdown_table, percent, pyplot, read_csv, save_figure

TRAINING_FILES = ("trainer_state.json", "progress.csv")
CURVE_KEYS = ("loss", "eval_loss", "eval_accuracy", "learning_rate")


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


def plot_per_subject(report: dict, path: Path, max_subjects: int = 25) -> Path:
    """Horizontal bars of accuracy per subject (largest subjects), with n and baselines."""
    plt = pyplot()
    items = list(report["per_subject"].items())[:max_subjects][::-1]
    fig, ax = plt.subplots(figsize=(8, 0.35 * len(items) + 1.6))
    bars = ax.barh([f"{s} (n={v['n']})" for s, v in items], [v["accuracy"] for _, v in items], color="#4c72b0")
    ax.bar_label(bars, labels=[f"{v['accuracy']:.2f}" for _, v in items], padding=2, fontsize=7)
    base = report["baselines"]
    # Overall first so the dashed baselines stay visible when they coincide with it.
    ax.axvline(report["accuracy"], color="black", label=f"overall {report['accuracy']:.3f}")
    ax.axvline(base["chance"], color="grey", linestyle=":", label=f"chance {base['chance']:.2f}")
    ax.axvline(base["majority"], color="#c44e52", linestyle="--",
               label=f"majority ({base['majority_letter']}) {base['majority']:.2f}")
    ax.set_xlim(0, 1.08)
    ax.set_xlabel("accuracy")
    ax.set_title(f"Accuracy per subject ({report['n']} questions)")
    ax.legend(loc="lower right", fontsize=8)
    return save_figure(fig, path)


def plot_reliability(report: dict, path: Path) -> Path:
    """Reliability diagram: accuracy per confidence bin against the diagonal, with bin counts."""
    plt = pyplot()
    fig, (ax, ax_n) = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
    _reliability_panel(ax, ax_n, report["reliability"],
                       f"Reliability (ECE {report['ece']:.3f}, {report['ece_bins']} equal-width bins)")
    return save_figure(fig, path)


def plot_calibrated_reliability(report: dict, path: Path) -> Path:
    """The reliability diagram before and after temperature scaling, side by side."""
    plt = pyplot()
    cal = report["calibration"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True, sharey="row",
                             gridspec_kw=dict(height_ratios=[3, 1]))
    _reliability_panel(axes[0][0], axes[1][0], cal["reliability_before"],
                       f"Before (T = 1, ECE {cal['ece_before']:.3f})")
    _reliability_panel(axes[0][1], axes[1][1], cal["reliability"],
                       f"After (T = {cal['temperature']:.2f}, ECE {cal['ece']:.3f})")
    return save_figure(fig, path)


def _reliability_panel(ax, ax_n, bins: list[dict], title: str) -> None:
    width = bins[0]["upper"] - bins[0]["lower"]
    filled = [b for b in bins if b["count"]]
    ax.bar([b["lower"] for b in filled], [b["accuracy"] for b in filled], width=width, align="edge",
           edgecolor="black", color="#4c72b0", label="accuracy")
    ax.bar([b["lower"] for b in filled], [b["confidence"] - b["accuracy"] for b in filled],
           bottom=[b["accuracy"] for b in filled], width=width, align="edge", color="#c44e52", alpha=0.35,
           label="gap to confidence")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", label="perfect calibration")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax_n.bar([b["lower"] for b in bins], [b["count"] for b in bins], width=width, align="edge", color="grey",
             edgecolor="black")
    ax_n.set_ylabel("questions")
    ax_n.set_xlabel("confidence (probability of the chosen option)")
    ax_n.set_xlim(0, 1)


def plot_answer_sets(report: dict, path: Path, max_subjects: int = 25) -> Path:
    """Conformal coverage (against its target) and mean set size per subject (largest first)."""
    plt = pyplot()
    conformal = report["conformal"]
    items = list(conformal["per_subject"].items())[:max_subjects][::-1]
    labels = [f"{s} (n={v['n']})" for s, v in items]
    fig, (ax_c, ax_s) = plt.subplots(1, 2, figsize=(10, 0.35 * len(items) + 1.8), sharey=True)
    bars = ax_c.barh(labels, [v["coverage"] for _, v in items], color="#4c72b0")
    ax_c.bar_label(bars, labels=[f"{v['coverage']:.2f}" for _, v in items], padding=2, fontsize=7)
    ax_c.axvline(conformal["target_coverage"], color="#c44e52", linestyle="--",
                 label=f"target {conformal['target_coverage']:.2f}")
    ax_c.axvline(conformal["coverage"], color="black", label=f"overall {conformal['coverage']:.3f}")
    ax_c.set_xlim(0, 1.1)
    ax_c.set_xlabel("coverage (answer in the set)")
    ax_c.legend(loc="lower left", fontsize=8)
    bars = ax_s.barh(labels, [v["mean_set_size"] for _, v in items], color="#55a868")
    ax_s.bar_label(bars, labels=[f"{v['mean_set_size']:.2f}" for _, v in items], padding=2, fontsize=7)
    ax_s.axvline(conformal["mean_set_size"], color="black", label=f"overall {conformal['mean_set_size']:.2f}")
    ax_s.set_xlim(0, max([v["mean_set_size"] for _, v in items] + [1]) * 1.15)
    ax_s.set_xlabel("mean set size (options)")
    ax_s.legend(loc="lower right", fontsize=8)
    fig.suptitle(f"Conformal answer sets at alpha {conformal['alpha']} ({conformal['n']} questions)")
    return save_figure(fig, path)


def plot_coverage(report: dict, path: Path) -> Path:
    """Accuracy against coverage when abstaining below a confidence threshold."""
    plt = pyplot()
    points = sorted(report["coverage"], key=lambda p: p["coverage"])
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot([p["coverage"] for p in points], [p["accuracy"] for p in points], marker="o", color="#4c72b0")
    for p in points[:: max(1, len(points) // 5)]:
        ax.annotate(f"≥{p['threshold']:.2f}", (p["coverage"], p["accuracy"]), textcoords="offset points",
                    xytext=(0, 7), ha="center", fontsize=7)
    ax.axhline(report["baselines"]["majority"], color="#c44e52", linestyle="--", label="majority baseline")
    ax.axhline(report["baselines"]["chance"], color="grey", linestyle=":", label="chance")
    ax.set_xlim(0, 1.05)
    ax.set_ylim(0, 1)
    ax.set_xlabel("coverage (share of questions answered)")
    ax.set_ylabel("accuracy on answered")
    ax.set_title("Accuracy vs coverage (labels: confidence threshold)")
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


def plot_confusion(report: dict, path: Path) -> Path:
    plt = pyplot()
    matrix, labels = report["confusion"]["matrix"], report["confusion"]["labels"]
    fig, ax = plt.subplots(figsize=(4.4, 3.8))
    image = ax.imshow(matrix, cmap="Blues")
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("answer")
    ax.set_title("Answer-position confusion")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# Training curves
# ---------------------------------------------------------------------------


def _number(value) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def find_training_log(run_dir: Path) -> Optional[Path]:
    """The run's `progress.csv` (written by `medqa train`) or else its newest `trainer_state.json`."""
    run_dir = Path(run_dir)
    if run_dir.is_file():
        return run_dir
    for name in TRAINING_FILES[::-1]:
        direct = run_dir / name
        if direct.exists():
            return direct
    states = sorted(run_dir.rglob("trainer_state.json"), key=lambda p: p.stat().st_mtime)
    return states[-1] if states else None


def load_training_history(run_dir: str | Path) -> list[dict]:
    """HF `log_history` rows ({step, loss, eval_loss, ...}) from a run directory or file."""
    path = find_training_log(Path(run_dir))
    if path is None:
        raise FileNotFoundError(f"{run_dir}: no progress.csv or trainer_state.json found")
    if path.suffix == ".json":
        rows = json.loads(path.read_text()).get("log_history", [])
    else:
        rows = read_csv(path)
    history = []
    for row in rows:
        clean = {k: _number(v) for k, v in row.items()}
        history.append({k: v for k, v in clean.items() if v is not None})
    return [row for row in history if "step" in row]


def plot_training_curves(history: list[dict], path: Path) -> Optional[Path]:
    """Loss (train and eval) and eval accuracy against step; None if nothing to plot."""
    plt = pyplot()
    series = {k: [(r["step"], r[k]) for r in history if k in r] for k in CURVE_KEYS}
    if not any(series[k] for k in ("loss", "eval_loss", "eval_accuracy")):
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, style in (("loss", "-"), ("eval_loss", "o-")):
        if series[key]:
            ax_loss.plot(*zip(*series[key]), style, label=key)
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.legend()
    ax_loss.set_title("Loss")
    if series["eval_accuracy"]:
        ax_acc.plot(*zip(*series["eval_accuracy"]), "o-", color="#55a868")
    ax_acc.set_ylim(0, 1)
    ax_acc.set_xlabel("step")
    ax_acc.set_ylabel("eval accuracy (MCQ)")
    ax_acc.set_title("Validation accuracy")
    return save_figure(fig, path)


# ---------------------------------------------------------------------------
# Markdown
# ---------------------------------------------------------------------------


def summary_lines(report: dict) -> list[str]:
    base = report["baselines"]
    rows = [
        ["accuracy", f"**{report['accuracy']:.3f}** ({report['n_correct']}/{report['n']})"],
        ["chance baseline", f"{base['chance']:.3f}"],
        [f"majority baseline (always {base['majority_letter']})", f"{base['majority']:.3f}"],
        [f"ECE ({report['ece_bins']} bins)", f"{report['ece']:.3f}"],
        ["mean confidence", f"{report['mean_confidence']:.3f}"],
        ["seconds per question", f"{report['seconds_per_question']:.4f}"],
    ]
    perm = report.get("permutation_consistency")
    if perm:
        rows.append([f"permutation consistency (options rotated by {perm['shift']}, n={perm['n']})",
                     f"{perm['consistency']:.3f}"])
    debiased = report.get("debiased")
    if debiased:
        rows.append([f"position-debiased accuracy ({debiased['permutations']} rotations)",
                     f"**{debiased['accuracy']:.3f}** (raw {debiased['accuracy_raw']:.3f}, "
                     f"{debiased['changed']} answers changed)"])
    cal = report.get("calibration")
    if cal:
        rows.append([f"ECE after temperature scaling (T = {cal['temperature']:.3f})",
                     f"**{cal['ece']:.3f}** (before {cal['ece_before']:.3f})"])
    conformal = report.get("conformal")
    if conformal:
        rows.append([f"answer-set coverage (target {conformal['target_coverage']:.2f})",
                     f"**{conformal['coverage']:.3f}**, mean set size {conformal['mean_set_size']:.2f}"])
    return markdown_table(["metric", "value"], rows)


def _sections(report: dict) -> list[str]:
    answers, predictions = report["answer_distribution"], report["prediction_distribution"]
    out = ["## Per subject", ""]
    out += markdown_table(["subject", "n", "correct", "accuracy"],
                          [[s, v["n"], v["correct"], f"{v['accuracy']:.3f}"]
                           for s, v in report["per_subject"].items()])
    out += ["", "## Answer positions", ""]
    out += markdown_table(["letter", "share of answers", "share of predictions"],
                          [[k, percent(answers[k]), percent(predictions[k])] for k in answers])
    out += ["", "## Accuracy vs coverage", ""]
    out += markdown_table(["answer when confidence ≥", "coverage", "accuracy"],
                          [[f"{p['threshold']:.3f}", percent(p["coverage"]), f"{p['accuracy']:.3f}"]
                           for p in report["coverage"]])
    conformal = report.get("conformal")
    if conformal:
        own = set(conformal["mondrian_subjects"])
        out += ["", f"## Answer sets (split conformal, alpha {conformal['alpha']})", "",
                "A set holds every option the calibration cannot rule out; its size is the model's doubt. "
                "Subjects marked * have their own threshold; the others use the pooled one.", ""]
        out += markdown_table(["subject", "n", "coverage", "mean set size"],
                              [[s + (" *" if s in own else ""), v["n"], f"{v['coverage']:.3f}",
                                f"{v['mean_set_size']:.2f}"] for s, v in conformal["per_subject"].items()])
    gen = report.get("generation")
    if gen and gen.get("n"):
        out += ["", "## Explanations (generation)", ""]
        out += markdown_table(["n", "ROUGE-L", "BLEU", "perplexity of references", "verbosity (mean / median)"],
                              [[gen["n"], f"{gen['rougeL']:.3f}", f"{gen['bleu']:.3f}", f"{gen['perplexity']:.2f}",
                                f"{gen['verbosity_mean']:.2f} / {gen['verbosity_median']:.2f}"]])
    analysis = report.get("error_analysis")
    if analysis:
        out += ["", f"## Error analysis ({analysis['n_failures']} wrong of {analysis['n']})", "",
                analysis["note"] + ".", ""]
        rows = [[p["pattern"], f"{p['count']}/{p['out_of']}", p["detail"], p["suggestion"]]
                for p in analysis["patterns"]]
        out += (markdown_table(["pattern", "count", "detail", "suggested fix"], rows) if rows
                else ["No failure pattern stands out."])
    return out


def write_markdown_report(report: dict, path: str | Path, run_dir: Optional[str] = None) -> Path:
    """`path` (Markdown) plus PNGs in `<stem>_plots/` beside it; returns the Markdown path."""
    path = Path(path)
    plots_dir = path.parent / f"{path.stem}_plots"
    plots = {
        "Per-subject accuracy": plot_per_subject(report, plots_dir / "per_subject.png"),
        "Reliability diagram": plot_reliability(report, plots_dir / "reliability.png"),
        "Accuracy vs coverage": plot_coverage(report, plots_dir / "coverage.png"),
        "Answer-position confusion": plot_confusion(report, plots_dir / "confusion.png"),
    }
    if "calibration" in report:
        plots["Reliability before and after temperature scaling"] = plot_calibrated_reliability(
            report, plots_dir / "reliability_calibrated.png")
        plots["Answer sets per subject"] = plot_answer_sets(report, plots_dir / "answer_sets.png")
    if run_dir:
        curves = plot_training_curves(load_training_history(run_dir), plots_dir / "training_curves.png")
        if curves:
            plots["Training curves"] = curves
    title = report.get("model", "model") + (f" + adapter {report['adapter']}" if report.get("adapter") else "")
    data = report.get("data", {})
    lines = [f"# Evaluation: {title}", "",
             f"Data: `{data.get('source', '?')}` — {report['n']} questions scored by **{report['method']}** "
             "log-likelihood; "
             f"{data.get('rejected', 0)} malformed row(s) skipped.", ""]
    lines += summary_lines(report) + [""] + _sections(report) + ["", "## Plots", ""]
    lines += [f"![{name}]({p.relative_to(path.parent).as_posix()})" for name, p in plots.items()]
    lines += ["", "_Research use only; not for clinical decisions._", ""]
    path.write_text("\n".join(lines))
    return path


# ---------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------


def _load_json(path: Optional[str | Path]) -> Optional[dict]:
    return json.loads(Path(path).read_text()) if path and Path(path).exists() else None


def model_card(adapter_dir: str | Path, eval_report: Optional[dict] = None,
               safety_report: Optional[dict] = None) -> str:
    """Markdown model card (Hugging Face README format) for a LoRA adapter or merged export."""
    adapter_dir = Path(adapter_dir)
    adapter_cfg = _load_json(adapter_dir / "adapter_config.json") or {}
    base = adapter_cfg.get("base_model_name_or_path", "unknown")
    config_path = adapter_dir / "medqa_config.yaml"
    config_text = config_path.read_text() if config_path.exists() else None
    lines = ["---", "library_name: peft", f"base_model: {base}", "license: apache-2.0",
             "tags: [medical, multiple-choice, lora, qlora, medqa]", "---", "",
             f"# {adapter_dir.name}: LoRA adapter for medical multiple-choice QA", "",
             "## Base model and adapter", "",
             f"- base model: `{base}`",
             f"- LoRA rank {adapter_cfg.get('r', '?')}, alpha {adapter_cfg.get('lora_alpha', '?')}, "
             f"dropout {adapter_cfg.get('lora_dropout', '?')}, targets {adapter_cfg.get('target_modules', '?')}", ""]
    lines += ["## Training data", "", _data_line(config_text), ""]
    if config_text:
        lines += ["## Training configuration", "", "```yaml", config_text.strip(), "```", ""]
    lines += ["## Results", ""]
    if eval_report:
        source = eval_report.get("data", {}).get("source", "?")
        lines += summary_lines(eval_report)
        lines += ["", f"Evaluated on `{source}` with `medqa evaluate` ({eval_report['method']} scoring)."]
    else:
        lines.append("Not evaluated yet: run `medqa evaluate --adapter <this directory> --data SRC`.")
    lines += ["", "## Safety", ""]
    if safety_report:
        lines += ["```json", json.dumps(safety_report, indent=2)[:4000], "```"]
    else:
        lines.append("No safety evaluation attached. Serve it behind the medqa safety validator (`medqa serve`).")
    lines += ["", "## Limitations and intended use", "",
              "- **Not for clinical use.** Research and education only; answers can be wrong, outdated or unsafe.",
              "- Trained and evaluated on exam-style multiple-choice questions (MedMCQA / MedQA style); accuracy "
              "there does not transfer to open clinical questions, other languages or real patients.",
              "- Compare accuracy with the chance and majority baselines above: small base models often sit near them.",
              "- Confidence scores are model probabilities, not calibrated risk estimates (see ECE).", ""]
    return "\n".join(lines)


def _data_line(config_text: Optional[str]) -> str:
    if config_text:
        import yaml

        data = (yaml.safe_load(config_text) or {}).get("data", {})
        return f"- source: `{data.get('source', '?')}`; validation fraction {data.get('val_fraction', '?')}; " \
               f"augmentation ×{data.get('augment_factor', '?')} (shuffled options); " \
               f"evaluation data removed: `{data.get('eval_source')}`"
    return "- see the training run's configuration (no medqa_config.yaml beside the adapter)"


def write_model_card(adapter_dir: str | Path, eval_report: Optional[str | Path | dict] = None,
                     safety_report: Optional[str | Path | dict] = None, output: Optional[str | Path] = None) -> Path:
    """Write the card to `output` (default `<adapter_dir>/README.md`)."""
    evaluation = eval_report if isinstance(eval_report, dict) or eval_report is None else _load_json(eval_report)
    safety = safety_report if isinstance(safety_report, dict) or safety_report is None else _load_json(safety_report)
    out = Path(output) if output else Path(adapter_dir) / "README.md"
    out.write_text(model_card(adapter_dir, evaluation, safety))
    return out
