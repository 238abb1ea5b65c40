"""The Ray Data pipeline end to end: same rows as the single-process twin; the CLI summary."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from data_helpers import clean_rows, data_config, write_jsonl
from medqa.data.preprocess import preprocess_in_process, preprocess_on_ray

pytestmark = pytest.mark.ray


def _rows(out):
    return {split: sorted(json.dumps(r, sort_keys=True) for r in pq.read_table(out / split).to_pylist())
            for split in ("train", "validation")}


def test_ray_pipeline_matches_plain(tmp_path, ray_session, dev_rows, tiny_tokenizer):
    rows = dev_rows[:300] + [{**dev_rows[3], "question": dev_rows[3]["question"].upper()}, "{not json"]
    eval_path = write_jsonl(tmp_path / "eval.jsonl",
                            [{**r, "question": r["question"].lower()} for r in dev_rows[10:20]])
    src = write_jsonl(tmp_path / "d.jsonl", rows)
    overrides = [f"data.eval_source={json.dumps(str(eval_path))}", "data.augment_factor=2"]
    ray_summary = preprocess_on_ray(data_config(tmp_path / "ray", src, *overrides))
    plain_summary = preprocess_in_process(data_config(tmp_path / "plain", src, *overrides), progress=False)
    assert _rows(tmp_path / "ray" / "out") == _rows(tmp_path / "plain" / "out")
    drop = {"engine", "seconds", "rows_per_second", "output_dir"}
    assert ({k: v for k, v in ray_summary.items() if k not in drop}
            == {k: v for k, v in plain_summary.items() if k not in drop})
    assert ray_summary["rows_in"] == 302 and ray_summary["duplicates_exact"] == 1
    assert ray_summary["contaminated"] == len({r["id"] for r in clean_rows(dev_rows[10:20])})
    assert ray_summary["rejected_by_reason"]["unparseable"] == 1
    table = pq.read_table(tmp_path / "ray" / "out" / "train")
    assert {"input_ids", "labels", "length", "id", "question", "options", "answer_index", "explanation",
            "subject", "topic"} <= set(table.column_names)


def test_ray_strict_fails_fast_with_the_row(tmp_path, ray_session, dev_rows):
    src = write_jsonl(tmp_path / "d.jsonl", dev_rows[:20] + [{**dev_rows[0], "opb": ""}])
    with pytest.raises(ValueError, match=r"row 21: rejected \(blank_option\)"):
        preprocess_on_ray(data_config(tmp_path, src, "data.strict=true"))


def test_cli_summary_on_the_shared_dev_file(tmp_path, ray_session, shared_data, capsys):
    from medqa.cli import main

    code = main(["preprocess", "--data", str(shared_data / "medmcqa_dev_public.jsonl"), "--output", str(tmp_path / "o"),
                 "--model", "tiny-random"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rows_in"] == 3183
    assert summary["rejected"] == 18 and summary["rejected_by_reason"] == {"duplicate_options": 18}
    assert summary["rows_in"] == (summary["rejected"] + summary["duplicates"] + summary["contaminated"]
                                  + summary["rows_kept"])
    assert sum(summary["answer_positions_before"].values()) + summary["validation_rows"] == summary["rows_kept"]
    assert all(abs(s - 0.25) <= 0.05 for s in summary["answer_share_after"].values())
    assert summary["per_subject"]["Dental"]["validation"] == 100
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["rows_out"] == summary["rows_out"]


@pytest.mark.parametrize("content", ["", "{broken\n[1]\n"])
def test_nothing_valid_gives_empty_splits_not_an_error(tmp_path, ray_session, content):
    src = tmp_path / "bad.jsonl"
    src.write_text(content)
    summary = preprocess_on_ray(data_config(tmp_path, src))
    assert summary["rows_out"] == 0 and summary["rejected"] == content.count("\n")
    for split in ("train", "validation"):
        table = pq.read_table(tmp_path / "out" / split)
        assert table.num_rows == 0 and "input_ids" in table.column_names


def test_no_validation_split_still_writes_a_readable_folder(tmp_path, ray_session, dev_rows):
    src = write_jsonl(tmp_path / "d.jsonl", dev_rows[:40])
    summary = preprocess_on_ray(data_config(tmp_path, src, "data.val_fraction=0.0", "data.augment_factor=1"))
    assert summary["validation_rows"] == 0 and pq.read_table(tmp_path / "out" / "validation").num_rows == 0
    assert pq.read_table(tmp_path / "out" / "train").num_rows == summary["train_rows"] == summary["rows_kept"]
