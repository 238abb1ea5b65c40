"""Fixtures for the data tests: real dev rows (read from ../shared, never copied
into the repo), writers for every file format, the tiny model's tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def dev_rows(shared_data: Path) -> list[dict]:
    with (shared_data / "medmcqa_dev_public.jsonl").open() as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_path):
    from medqa.modeling.loading import load_tokenizer

    return load_tokenizer(tiny_model_path)
