"""Fixtures for the data tests: real dev rows (read from ../shared, never copied
into the repo), writers for every file format, the tiny model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medqa.config import load_config


@pytest.fixture(scope="session")
def dev_rows(shared_data: Path) -> list[dict]:
    with (shared_data / "medmcqa_dev_public.jsonl").open() as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from medqa.modeling.loading import load_tokenizer

    return load_tokenizer(tiny_model_path)


def write_jsonl(path: Path, rows: list) -> Path:
    with path.open("w") as fh:
        for row in rows:
            fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return path


def data_config(tmp_path: Path, source: str, *overrides: str):
    return load_config(None, [f"data.source={json.dumps(str(source))}", f"data.output_dir={json.dumps(str(tmp_path / 'out'))}",
                              "model.name=tiny-random", *overrides])


def clean_rows(rows: list[dict]) -> list[dict]:
    """Rows the validator accepts (the dev file has 18 rows with duplicate options)."""
    from medqa.data.schema import Rejection, validate_row

    return [r for r in rows if not isinstance(validate_row(r), Rejection)]
