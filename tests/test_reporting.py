"""The shared reporting kit: percentages, Markdown tables, CSV files, figures."""

from __future__ import annotations

import subprocess
import sys

import pytest

from medqa.reporting import MISSING, markdown_table, percent, pyplot, read_csv, save_figure, write_csv

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("fraction, text", [
    (0.1234, "12.3%"),
    (1, "100.0%"),
    (0.0, "0.0%"),
    (0.0005, "0.1%"),
    (None, MISSING),
    (float("nan"), MISSING),
])
def test_percent(fraction, text):
    assert percent(fraction) == text


def cells(line: str) -> list[str]:
    """The cells of a Markdown table row, splitting on unescaped pipes only."""
    parts, current, chars = [], "", iter(line.strip()[1:-1])
    for char in chars:
        if char == "\\":
            current += char + next(chars)
        elif char == "|":
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()]


def test_table_has_header_separator_and_one_line_per_row():
    lines = markdown_table(["model", "accuracy"], [["base", "25.0%"], ["tuned", 0.5]])
    assert lines == ["| model | accuracy |", "|---|---|", "| base | 25.0% |", "| tuned | 0.5 |"]


@pytest.mark.parametrize("cell, rendered", [
    ("a | b", "a \\| b"),                    # a pipe would start a new column
    ("line one\nline two", "line one line two"),  # a newline would end the row
    ("x\r\ny|", "x y\\|"),
    (None, MISSING),
    (3, "3"),
])
def test_table_cells_stay_in_their_row_and_column(cell, rendered):
    header = ["name", "detail", "n"]
    lines = markdown_table(header, [["first", cell, 1]])
    assert len(lines) == 3
    assert cells(lines[2]) == ["first", rendered, "1"]
    assert len(cells(lines[2])) == len(header) == lines[1].count("---")


def test_table_rejects_a_row_of_the_wrong_width():
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        markdown_table(["a", "b", "c"], [[1, 2]])


def test_csv_round_trips_rows_with_differing_keys(tmp_path):
    rows = [{"step": 1, "loss": 2.5}, {"step": 2, "eval_loss": 2.2, "eval_accuracy": 0.3}, {"step": 3, "loss": None}]
    path = write_csv(rows, tmp_path / "nested" / "log.csv")
    assert path.read_text().splitlines()[0] == "step,loss,eval_loss,eval_accuracy"  # first-seen order
    assert read_csv(path) == [
        {"step": "1", "loss": "2.5", "eval_loss": "", "eval_accuracy": ""},
        {"step": "2", "loss": "", "eval_loss": "2.2", "eval_accuracy": "0.3"},
        {"step": "3", "loss": "", "eval_loss": "", "eval_accuracy": ""},
    ]


def test_csv_keeps_given_columns_and_quotes_awkward_values(tmp_path):
    rows = [{"b": 'say "hi", twice', "a": "two\nlines"}]
    path = write_csv(rows, tmp_path / "t.csv", fieldnames=["a", "b"])
    assert path.read_text().splitlines()[0] == "a,b"
    assert read_csv(path) == [{"a": "two\nlines", "b": 'say "hi", twice'}]
    assert read_csv(write_csv([], tmp_path / "empty.csv", fieldnames=["trial_id"])) == []


def test_csv_refuses_a_key_outside_the_given_columns(tmp_path):
    with pytest.raises(ValueError):
        write_csv([{"a": 1, "b": 2}], tmp_path / "t.csv", fieldnames=["a"])


def test_save_figure_writes_a_png_and_closes_the_figure(tmp_path):
    plt = pyplot()
    plt.close("all")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "plots" / "line.png")
    assert path == tmp_path / "plots" / "line.png"
    assert path.read_bytes()[:8] == PNG and path.stat().st_size > 1000
    assert plt.get_fignums() == []
    assert plt.get_backend().lower() == "agg"


def test_save_figure_closes_the_figure_when_saving_fails(tmp_path):
    plt = pyplot()
    fig, _ = plt.subplots()
    (tmp_path / "taken").write_text("a file, not a folder")
    with pytest.raises(OSError):
        save_figure(fig, tmp_path / "taken" / "plot.png")
    assert plt.get_fignums() == []


def test_importing_the_kit_leaves_matplotlib_unloaded():
    code = "import sys, medqa.reporting; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
