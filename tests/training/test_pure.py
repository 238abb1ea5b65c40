"""Pure parts of training: batching, step counts, DeepSpeed configs, run resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from medqa.config import ConfigError, TrainingConfig, load_config
from medqa.training.batching import (
    IGNORE_INDEX,
    collate,
    collate_rows,
    pack_rows,
    pack_table,
    steps_per_epoch,
    total_steps,
    warmup_steps,
)
from medqa.training.deepspeed import deepspeed_config
from medqa.training.driver import final_metrics, resolve_run


def rows(lengths):
    ids = [np.arange(1, n + 1) for n in lengths]
    labels = [np.where(np.arange(n) < n // 2, IGNORE_INDEX, np.arange(1, n + 1)) for n in lengths]
    return {"input_ids": ids, "labels": labels, "length": np.array(lengths)}


def test_collate_pads_inputs_labels_and_mask():
    out = collate(rows([3, 5]), pad_token_id=0)
    assert out["input_ids"].tolist() == [[1, 2, 3, 0, 0], [1, 2, 3, 4, 5]]
    assert out["labels"][0].tolist() == [IGNORE_INDEX, 2, 3, IGNORE_INDEX, IGNORE_INDEX]
    assert out["attention_mask"].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]
    assert "position_ids" not in out


def test_collate_rows_matches_collate_of_the_same_examples():
    data = rows([4, 2, 6])
    examples = [{k: data[k][i] for k in data} for i in range(3)]
    by_rows, by_columns = collate_rows(examples, pad_token_id=0), collate(data, pad_token_id=0)
    assert by_rows.keys() == by_columns.keys()
    for key in by_rows:
        assert torch.equal(by_rows[key], by_columns[key])


@pytest.mark.parametrize("lengths, max_length, n_rows", [
    ([5, 5, 5, 5], 10, 2),
    ([9, 2, 8, 1], 10, 2),
    ([6, 6, 6], 10, 3),
    ([12], 10, 1),  # longer than a row: truncated, never split
])
def test_pack_rows_first_fit_keeps_every_token_and_label(lengths, max_length, n_rows):
    packed = pack_rows(rows(lengths), max_length)
    assert len(packed["input_ids"]) == n_rows
    assert all(len(x) <= max_length for x in packed["input_ids"])
    assert sum(packed["length"]) == sum(min(n, max_length) for n in lengths)
    for ids, pos in zip(packed["input_ids"], packed["position_ids"]):
        starts = np.flatnonzero(pos == 0)
        # Every packed example restarts at position 0 and begins with token 1.
        assert (ids[starts] == 1).all()
    n_labels = sum(int((np.asarray(x) != IGNORE_INDEX).sum()) for x in packed["labels"])
    assert n_labels == sum(min(n, max_length) - n // 2 for n in lengths)


def test_pack_table_packs_each_window_and_keeps_every_token():
    import pyarrow as pa

    lengths = [5, 5, 5, 5, 9, 2, 8, 1]
    table = pa.Table.from_pydict(rows(lengths))
    packed = pack_table(table, max_length=10, window=4)
    # Windows never mix: [5, 5, 5, 5] fills 2 rows, [9, 2, 8, 1] fills 2 more.
    assert packed.num_rows == 4
    assert packed["length"].to_pylist() == [10, 10, 10, 10]
    assert sum(len(x) for x in packed["input_ids"].to_pylist()) == sum(lengths)
    assert set(packed.column_names) == {"input_ids", "labels", "position_ids", "length"}


def test_packed_collate_uses_position_ids_and_masks_examples_apart(tiny_model_path):
    """Packed rows give the same loss as the examples run one by one (block-diagonal mask)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_path).eval()
    model.config.use_cache = False  # as in training: a KV cache turns packed-mask detection off
    data = rows([6, 9, 4])
    packed = collate(pack_rows(data, 32), pad_token_id=0)
    assert "attention_mask" not in packed and packed["input_ids"].shape[0] == 1
    with torch.no_grad():
        joint = model(**packed).logits[0]
        alone = [model(input_ids=torch.tensor(np.array([x]))).logits[0] for x in data["input_ids"]]
    order = [1, 0, 2]  # first-fit-decreasing packs the longest first
    torch.testing.assert_close(joint[:19], torch.cat([alone[i] for i in order]), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("rows_, bs, workers, accum, expected", [
    (96, 4, 2, 1, 12), (97, 4, 2, 1, 13), (100, 4, 2, 2, 7), (8, 4, 2, 1, 1), (10, 3, 1, 1, 4), (1, 4, 2, 1, 1),
])
def test_steps_per_epoch(rows_, bs, workers, accum, expected):
    assert steps_per_epoch(rows_, bs, workers, accum) == expected


def test_total_and_warmup_steps():
    assert total_steps(96, TrainingConfig(max_steps=5)) == 5
    assert total_steps(96, TrainingConfig(num_workers=2, batch_size=4, epochs=1.5)) == 18
    assert warmup_steps(18, 0.1) == 2 and warmup_steps(18, 0.0) == 0
    with pytest.raises(ValueError, match="no training rows"):
        steps_per_epoch(0, 4, 2, 1)


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_config_leaves_trainer_values_auto(stage):
    cfg = load_config(None, ["training.strategy=deepspeed", f"training.zero_stage={stage}"])
    ds = deepspeed_config(cfg)
    assert ds["zero_optimization"]["stage"] == stage
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert ds[key] == "auto"
    assert ds["bf16"] == {"enabled": "auto"}
    assert "optimizer" not in ds and "scheduler" not in ds
    assert ds["zero_optimization"].get("stage3_gather_16bit_weights_on_model_save", False) is (stage == 3)
    json.dumps(ds)  # serialisable: it travels to the workers in the loop config


def test_zero_stage_is_validated():
    with pytest.raises(ConfigError, match="training.zero_stage"):
        load_config(None, ["training.zero_stage=1"])


def test_resolve_run(tmp_path):
    storage = tmp_path / "runs"
    (storage / "old" / "checkpoint_1").mkdir(parents=True)
    (storage / "empty").mkdir()
    base = [f"training.storage_path={storage}"]
    name, path = resolve_run(load_config(None, base + ["training.run_name=mine"]))
    assert (name, path) == ("mine", None)
    assert resolve_run(load_config(None, base + ["training.resume_from=latest"])) == ("old", None)
    with pytest.raises(FileNotFoundError, match="no run with a checkpoint"):
        resolve_run(load_config(None, [f"training.storage_path={tmp_path / 'none'}", "training.resume_from=latest"]))
    ckpt = storage / "old" / "checkpoint_1" / "checkpoint"
    ckpt.mkdir()
    with pytest.raises(FileNotFoundError, match="not a training checkpoint"):
        resolve_run(load_config(None, base + [f"training.resume_from={ckpt.parent}"]))
    (ckpt / "trainer_state.json").write_text("{}")
    assert resolve_run(load_config(None, base + [f"training.resume_from={ckpt.parent}"]))[1] == str(ckpt)


def test_final_metrics_keeps_latest_values_and_first_loss():
    history = [{"loss": 3.0, "step": 1}, {"loss": 2.0, "step": 2}, {"eval_loss": 2.5, "step": 2}]
    assert final_metrics(history) == {"loss": 2.0, "step": 2, "eval_loss": 2.5, "first_loss": 3.0}


def test_train_cli_reports_bad_config_clearly(capsys):
    from medqa.cli import main

    assert main(["train", "training.lerning_rate=1"]) == 2
    assert "training.lerning_rate" in capsys.readouterr().err


@pytest.mark.parametrize("n_records, world", [(1, 2), (2, 2), (5, 2), (3, 4), (0, 2), (7, 3)])
def test_rank_shares_are_equal_in_length_and_count_each_record_once(n_records, world):
    from medqa.training.hf_trainer import rank_share

    records = [f"r{i}" for i in range(n_records)]
    shares = [rank_share(records, rank, world) for rank in range(world)]
    assert len({len(share) for share, _ in shares}) == 1  # the same scoring work on every rank
    own = [r for share, counted in shares for r in share[:counted]]
    assert sorted(own) == records  # every record counted once, padding never
    assert all(r in records for share, _ in shares for r in share)
