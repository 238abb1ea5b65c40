"""The Trainer the workers build (`hf_trainer.make_trainer`), run in-process: one epoch per batching strategy."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from medqa.config import load_config
from medqa.training import hf_trainer
from medqa.training.batching import IGNORE_INDEX, total_steps
from medqa.training.driver import load_tables


def train_one_epoch(overrides: list[str], data_dir, output_dir) -> tuple:
    """(trainer, the collated batches it trained on) after one epoch on one worker."""
    from medqa.modeling.loading import load_tokenizer

    cfg = load_config(None, overrides + ["training.num_workers=1", "training.max_steps=-1", "training.epochs=1"])
    tables = load_tables(cfg, data_dir)
    args = hf_trainer.training_arguments(cfg, str(output_dir), total_steps(tables["train"].num_rows, cfg.training))
    args.eval_strategy, args.save_strategy, args.report_to = "no", "no", []
    trainer = hf_trainer.make_trainer(args, hf_trainer.build_model(cfg), load_tokenizer(cfg.model), tables["train"])
    batches, collate = [], trainer.data_collator

    def recording(rows):
        batches.append(collate(rows))
        return batches[-1]

    trainer.data_collator = recording
    trainer.train()
    return trainer, batches


@pytest.fixture
def one_epoch(prepared_data, tiny_overrides, tmp_path):
    def run(strategy: str):
        overrides = tiny_overrides(prepared_data, tmp_path / "runs", **{"training.batching": strategy})
        return train_one_epoch(overrides, prepared_data, tmp_path / strategy)

    return run


@pytest.mark.parametrize("strategy", ["padding", "group_by_length", "packing"])
def test_an_epoch_trains_every_answer_token_once(one_epoch, prepared_data, strategy):
    trainer, batches = one_epoch(strategy)
    assert trainer.state.global_step == len(batches) > 0
    source = pq.read_table(prepared_data / "train", columns=["labels"])["labels"].to_pylist()
    trained = sum(int((b["labels"] != IGNORE_INDEX).sum()) for b in batches)
    assert trained == sum(int((np.asarray(x) != IGNORE_INDEX).sum()) for x in source)
    assert ("position_ids" in batches[0]) is (strategy == "packing")


def test_length_grouping_pads_less_than_random_batches(one_epoch):
    (plain, plain_batches), (grouped, grouped_batches) = one_epoch("padding"), one_epoch("group_by_length")
    real = plain.state.num_input_tokens_seen
    assert real == grouped.state.num_input_tokens_seen > 0
    padded = [sum(b["input_ids"].numel() for b in batches) for batches in (grouped_batches, plain_batches)]
    assert real < padded[0] < padded[1]
