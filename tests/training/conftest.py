"""Fixtures for training tests: a small prepared-data folder in the pipeline's format.

Built here from real MedMCQA rows (../shared/data) tokenised with the tiny
model's tokenizer, with the columns the data pipeline writes: `input_ids`,
`labels` (-100 on prompt tokens), `length` and the record fields.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from medqa.data.prompts import mcq_prompt, mcq_target


def tokenise(tokenizer, record, max_length: int) -> dict:
    prompt = tokenizer(mcq_prompt(record.question, record.options), add_special_tokens=False)["input_ids"]
    target = tokenizer(mcq_target(record), add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prompt = prompt[-(max_length - len(target)):]
    ids = prompt + target
    labels = [-100] * len(prompt) + target
    return {"input_ids": ids, "labels": labels, "length": len(ids)}


def write_split(tokenizer, records, folder: Path, max_length: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for r in records:
        rows.append({**tokenise(tokenizer, r, max_length), "id": r.id, "question": r.question,
                     "options": list(r.options), "answer_index": r.answer_index,
                     "explanation": r.explanation, "subject": r.subject, "topic": r.topic})
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")


@pytest.fixture(scope="session")
def prepared_data(tmp_path_factory, shared_data, tiny_model_path) -> Path:
    """96 training and 16 validation rows, truncated to 192 tokens."""
    from medqa.data.sources import read_records
    from medqa.modeling.loading import load_tokenizer

    records, _ = read_records(str(shared_data / "medmcqa_dev_public.jsonl"))
    tokenizer = load_tokenizer(tiny_model_path)
    out = tmp_path_factory.mktemp("prepared")
    write_split(tokenizer, records[:96], out / "train", 192)
    write_split(tokenizer, records[96:112], out / "validation", 192)
    return out


@pytest.fixture
def tiny_overrides():
    return _tiny_overrides


def _tiny_overrides(data_dir: Path, storage: Path, **extra) -> list[str]:
    """Overrides for a fast 2-worker QLoRA run of the tiny model on `prepared_data`."""
    values = {
        "model.name": "tiny-random",
        "model.load_in_4bit": True,
        "lora.r": 8,
        "lora.alpha": 16,
        "lora.dropout": 0.0,
        "data.output_dir": str(data_dir),
        "data.max_length": 192,
        "training.num_workers": 2,
        "training.batch_size": 4,
        "training.learning_rate": 1e-2,
        "training.warmup_ratio": 0.0,
        "training.max_steps": 8,
        "training.eval_steps": 4,
        "training.save_steps": 4,
        "training.eval_mcq_limit": 8,
        "training.storage_path": str(storage),
        "training.max_failures": 0,
        **extra,
    }
    return [f"{k}={v}" for k, v in values.items()]
