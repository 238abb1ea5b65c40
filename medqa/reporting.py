"""The reporting kit behind every human-readable output (the evaluation report,
the tuning results, the training progress log, the demo report): matplotlib set
up to write files, one way to save a figure, one percentage format, Markdown
tables and CSV files. Kept in one place so the same figure reads the same way in
every report.

matplotlib is imported on first use, on the Agg backend (files only, no display
needed), so importing this module stays light.

May import: nothing of medqa.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

DPI = 110
"""The resolution of every PNG the package writes."""
MISSING = "–"
"""How a missing value reads in a table or a percentage (an en dash)."""


def pyplot():
    """`matplotlib.pyplot`, on the Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    """Write `fig` as a PNG at `path` (parents created), then close it, even on error,
    so a long report never piles figures up in memory."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, dpi=DPI)
    finally:
        pyplot().close(fig)
    return path


def percent(fraction: Optional[float]) -> str:
    """A fraction as a percentage with one decimal (0.1234 → '12.3%'); None or NaN → MISSING."""
    if fraction is None or math.isnan(fraction):
        return MISSING
    return f"{fraction:.1%}"


def _cell(value: Any) -> str:
    # A `|` would end the cell and a newline the row: escape the one, flatten the other.
    text = MISSING if value is None else str(value)
    return " ".join(text.splitlines()).replace("|", "\\|")


def _row(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(map(_cell, cells)) + " |"


def markdown_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table as lines, without a blank line after it; None cells read MISSING."""
    lines = [_row(header), "|" + "---|" * len(header)]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells for {len(header)} columns: {row!r}")
        lines.append(_row(row))
    return lines


def write_csv(rows: Iterable[Mapping[str, Any]], path: str | Path,
              fieldnames: Optional[Sequence[str]] = None) -> Path:
    """`rows` as CSV with a header line (parents created). Columns default to every key of
    every row, in first-seen order; a row without a column leaves its cell empty, as does None."""
    rows = list(rows)
    if fieldnames is None:
        fieldnames = list(dict.fromkeys(key for row in rows for key in row))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line, as strings (empty cells as '')."""
    with Path(path).open(newline="") as f:
        return list(csv.DictReader(f))
