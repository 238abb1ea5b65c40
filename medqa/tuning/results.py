"""What a search leaves behind: the trials table, the best trial, the plots.

Pure over `TrialOutcome`s (plain data collected from Tune's `ResultGrid`),
so the table and the choice of winner are unit-tested without Ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from medqa.reporting import pyplot, read_csv, save_figure, write_csv
from medqa.tuning.space import PARAMS


@dataclass
class TrialOutcome:
    trial_id: str
    params: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    """One dict per Tune iteration (`training_iteration`, metrics)."""
    error: Optional[str] = None
    path: Optional[str] = None
    tune_status: Optional[str] = None
    """Tune's trial status when known; anything but TERMINATED/ERROR means the search was interrupted."""


def row_status(outcome: TrialOutcome, iterations: int, max_t: int) -> str:
    if outcome.error or outcome.tune_status == "ERROR":
        return "ERROR"
    if outcome.tune_status not in (None, "TERMINATED"):
        return "UNFINISHED"
    return "STOPPED" if iterations < max_t else "COMPLETED"


def last_attempt(history: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of a trial's latest attempt: a trial rerun after `Tuner.restore`
    starts again at iteration 1, and Tune appends to the same history."""
    start = 0
    for i in range(1, len(history)):
        if history[i].get("training_iteration", 0) <= history[i - 1].get("training_iteration", 0):
            start = i
    return history[start:]


def metric_series(outcome: TrialOutcome, metric: str) -> list[float]:
    return [float(row[metric]) for row in last_attempt(outcome.history) if _is_number(row.get(metric))]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _best(values: list[float], mode: str) -> Optional[float]:
    if not values:
        return None
    return min(values) if mode == "min" else max(values)


def trial_row(outcome: TrialOutcome, metric: str, mode: str, max_t: int) -> dict[str, Any]:
    """One row of the trials table."""
    values = metric_series(outcome, metric)
    iterations = max((int(r.get("training_iteration", 0)) for r in last_attempt(outcome.history)), default=0)
    status = row_status(outcome, iterations, max_t)
    row: dict[str, Any] = {"trial_id": outcome.trial_id}
    row.update({k: outcome.params.get(k) for k in PARAMS})
    row.update({
        "iterations": iterations,
        f"best_{metric}": _best(values, mode),
        f"last_{metric}": values[-1] if values else None,
        "stopped_early": status == "STOPPED",
        "status": status,
        "error": outcome.error or "",
        "path": outcome.path or "",
    })
    return row


def trial_rows(outcomes: list[TrialOutcome], metric: str, mode: str, max_t: int) -> list[dict[str, Any]]:
    return [trial_row(o, metric, mode, max_t) for o in sorted(outcomes, key=lambda o: o.trial_id)]


def pick_best(rows: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any]:
    """The winner by its last reported metric, as Tune's `get_best_result` (scope `last`).

    An ASHA-stopped trial's last value was beaten at its rung, so comparing
    last values favours trials that ran longest; ties go to more iterations.
    """
    scored = [r for r in rows if r["status"] in ("COMPLETED", "STOPPED") and r[f"last_{metric}"] is not None]
    if not scored:
        raise ValueError(f"no trial reported {metric}; see the trials table for errors")
    sign = 1.0 if mode == "min" else -1.0
    return min(scored, key=lambda r: (sign * r[f"last_{metric}"], -r["iterations"]))


def write_table(rows: list[dict[str, Any]], path: Path) -> Path:
    """The trials table as CSV, one row per trial; an empty search still gets its header."""
    return write_csv(rows, path, fieldnames=None if rows else ["trial_id"])


def read_table(path: Path) -> list[dict[str, str]]:
    """The trials table back, every cell a string."""
    return read_csv(path)


def total_iterations(rows: list[dict[str, Any]]) -> int:
    return sum(int(r["iterations"]) for r in rows)


# ---------------------------------------------------------------- plots


def plot_curves(outcomes: list[TrialOutcome], metric: str, max_t: int, path: Path) -> Path:
    """The metric at every iteration of every trial; an x marks where ASHA stopped a trial."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for o in sorted(outcomes, key=lambda o: o.trial_id):
        points = [(int(r["training_iteration"]), float(r[metric])) for r in last_attempt(o.history)
                  if _is_number(r.get(metric)) and "training_iteration" in r]
        if not points:
            continue
        xs, ys = zip(*points)
        label = f"{o.trial_id} r={o.params.get('lora_r')} lr={o.params.get('learning_rate', 0):.1e}"
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if xs[-1] < max_t:
            ax.plot(xs[-1], ys[-1], marker="x", markersize=11, mew=2.5, color=line.get_color())
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvline(max_t, color="grey", linestyle=":", linewidth=1)
    ax.set(xlabel="training iteration (evaluation)", ylabel=metric,
           title=f"{metric} per trial (x = stopped early by the scheduler)")
    ax.legend(fontsize=7, loc="best")
    return save_figure(fig, path)


def plot_params(rows: list[dict[str, Any]], metric: str, path: Path) -> Path:
    """Final metric against learning rate (log scale, coloured by rank) and against rank."""
    plt = pyplot()
    done = [r for r in rows if r[f"last_{metric}"] is not None and r["learning_rate"] is not None]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    if done:
        lrs = [float(r["learning_rate"]) for r in done]
        ranks = [int(r["lora_r"]) for r in done]
        values = [float(r[f"last_{metric}"]) for r in done]
        sizes = [20 + 20 * int(r["iterations"]) for r in done]
        points = left.scatter(lrs, values, c=ranks, s=sizes, cmap="viridis")
        fig.colorbar(points, ax=left, label="lora_r")
        right.scatter(ranks, values, c=[math.log10(x) for x in lrs], s=sizes, cmap="plasma")
    left.set(xscale="log", xlabel="learning rate", ylabel=f"last {metric}", title="final metric vs learning rate")
    right.set(xscale="log", xlabel="lora_r", ylabel=f"last {metric}", title="final metric vs rank (size = iterations)")
    return save_figure(fig, path)
