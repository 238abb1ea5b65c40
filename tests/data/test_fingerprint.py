"""Prepared data is reused only when it was made with the same data settings."""

from __future__ import annotations

import json

import pytest

from medqa.config import load_config
from medqa.data.preprocess import data_fingerprint, prepared_fingerprint


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"question": "q"}\n')
    return path


def fingerprint(source, *overrides):
    return data_fingerprint(load_config(None, [f"data.source={source}", *overrides]))


@pytest.mark.parametrize("change", ["data.max_length=256", "model.name=tiny-random", "seed=7",
                                    "data.augment_factor=1", "data.val_fraction=0.2"])
def test_settings_that_shape_the_rows_change_the_fingerprint(source, change):
    assert fingerprint(source, change) != fingerprint(source)


def test_where_the_rows_are_written_does_not(source, tmp_path):
    assert fingerprint(source, f"data.output_dir={tmp_path / 'elsewhere'}") == fingerprint(source)


def test_an_edited_source_file_does(source):
    before = fingerprint(source)
    source.write_text('{"question": "q"}\n{"question": "another"}\n')
    assert fingerprint(source) != before


def test_prepared_fingerprint_reads_the_summary(tmp_path):
    assert prepared_fingerprint(tmp_path) is None  # hand-made folder: no summary
    (tmp_path / "summary.json").write_text(json.dumps({"fingerprint": "abc"}))
    assert prepared_fingerprint(tmp_path) == "abc"
