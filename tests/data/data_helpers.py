"""Helpers for the data tests (plain functions; the fixtures are in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

from medqa.config import load_config


def write_jsonl(path: Path, rows: list) -> Path:
    with path.open("w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def data_config(tmp_path: Path, source: str, *overrides: str):
    return load_config(None, [f"data.source={json.dumps(str(source))}",
                              f"data.output_dir={json.dumps(str(tmp_path / 'out'))}",
                              "model.name=tiny-random", *overrides])


def clean_rows(rows: list[dict]) -> list[dict]:
    """Rows the validator accepts (the dev file has 18 rows with duplicate options)."""
    from medqa.data.schema import Rejection, validate_row

    return [r for r in rows if not isinstance(validate_row(r), Rejection)]
