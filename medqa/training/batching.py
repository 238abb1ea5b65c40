"""Turning tokenised examples into training batches (pure: numpy, pyarrow and torch only).

Three strategies, chosen by `training.batching` (benchmarks/RESULTS.md has the
measurements):

- `padding`: batches of randomly drawn examples, each padded to its own
  longest example.
- `group_by_length`: the Hugging Face `Trainer`'s `LengthGroupedSampler`
  (`train_sampling_strategy="group_by_length"`, reading the pipeline's
  `length` column): shuffled mega-batches of up to 50 batches are sorted by
  length, so a batch holds examples of similar length and carries little
  padding.
- `packing`: whole examples are packed first-fit into rows of at most
  `max_length` tokens (`pack_table`, once, on the driver). Each row carries
  `position_ids` that restart at 0 for every example and no attention mask:
  transformers then builds a block-diagonal causal mask from the position ids
  (`masking_utils.find_packed_sequence_indices`; only without a KV cache, so
  `use_cache=False` as `load_model` sets), so packed examples never see each
  other (tests/training/test_pure.py checks the logits match unpacked runs).
  The unused tail of a row is one more "example" of pad tokens whose labels
  are -100.

Workers receive ready rows and only pad them (`collate_rows`, the Trainer's
data collator).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IGNORE_INDEX = -100
PACK_WINDOW = 256
"""Examples packed together at a time: first-fit over a window stays cheap and keeps the
data order roughly intact."""


def pack_rows(batch: dict[str, Any], max_length: int) -> dict[str, Any]:
    """Pack whole examples first-fit-decreasing into rows of at most `max_length` tokens."""
    bins: list[list[int]] = []
    room: list[int] = []
    lengths = [len(ids) for ids in batch["input_ids"]]
    for i in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        n = min(lengths[i], max_length)
        slot = next((b for b, free in enumerate(room) if free >= n), None)
        if slot is None:
            bins.append([])
            room.append(max_length)
            slot = len(bins) - 1
        bins[slot].append(i)
        room[slot] -= n
    out: dict[str, list] = {"input_ids": [], "labels": [], "position_ids": [], "length": []}
    for members in bins:
        ids = [np.asarray(batch["input_ids"][i][:max_length]) for i in members]
        labels = [np.asarray(batch["labels"][i][:max_length]) for i in members]
        out["input_ids"].append(np.concatenate(ids).astype(np.int64))
        out["labels"].append(np.concatenate(labels).astype(np.int64))
        out["position_ids"].append(np.concatenate([np.arange(len(x)) for x in ids]).astype(np.int64))
        out["length"].append(sum(len(x) for x in ids))
    return out


def pack_table(table: "pa.Table", max_length: int, window: int = PACK_WINDOW) -> "pa.Table":  # noqa: F821
    """`pack_rows` over consecutive windows of `window` examples, as one Arrow table."""
    import pyarrow as pa

    columns = table.to_pydict()
    packed: dict[str, list] = {}
    for start in range(0, table.num_rows, window):
        chunk = pack_rows({k: v[start:start + window] for k, v in columns.items()}, max_length)
        for k, v in chunk.items():
            packed.setdefault(k, []).extend(v)
    return pa.Table.from_pydict(packed)


def collate_rows(rows: list[dict[str, Any]], pad_token_id: int) -> dict[str, "torch.Tensor"]:  # noqa: F821
    """`collate` for a list of examples (the form a `Trainer` data collator receives)."""
    return collate({k: [r[k] for r in rows] for k in rows[0]}, pad_token_id)


def collate(batch: dict[str, Any], pad_token_id: int) -> dict[str, "torch.Tensor"]:  # noqa: F821
    """Pad a batch to its longest row: inputs with `pad_token_id`, labels with -100.

    Rows with `position_ids` (packed) get them padded as a fresh 0.. run and no
    attention mask (see module docstring); plain rows get an attention mask.
    """
    import torch

    ids = [np.asarray(x, dtype=np.int64) for x in batch["input_ids"]]
    labels = [np.asarray(x, dtype=np.int64) for x in batch["labels"]]
    width = max(len(x) for x in ids)
    out = {
        "input_ids": torch.tensor(np.stack([_pad(x, width, pad_token_id) for x in ids])),
        "labels": torch.tensor(np.stack([_pad(x, width, IGNORE_INDEX) for x in labels])),
    }
    if "position_ids" in batch:
        pos = [np.asarray(p, dtype=np.int64) for p in batch["position_ids"]]
        out["position_ids"] = torch.tensor(np.stack([_pad_positions(p, width) for p in pos]))
    else:
        out["attention_mask"] = torch.tensor(np.stack([_pad(np.ones_like(x), width, 0) for x in ids]))
    return out


def _pad(x: np.ndarray, width: int, value: int) -> np.ndarray:
    return np.concatenate([x, np.full(width - len(x), value, dtype=np.int64)])


def _pad_positions(pos: np.ndarray, width: int) -> np.ndarray:
    return np.concatenate([pos, np.arange(width - len(pos), dtype=np.int64)])


def steps_per_epoch(rows: int, batch_size: int, num_workers: int, accumulation: int) -> int:
    """Optimizer steps in one pass over `rows` examples, as the `Trainer` counts them.

    The batches (the last one may be short) are dealt round-robin to the workers
    (accelerate's even batches: a worker with one batch fewer repeats one), and
    a partial accumulation at the end of the pass still makes a step.
    """
    if rows <= 0:
        raise ValueError("no training rows: the prepared train split is empty")
    batches_per_worker = math.ceil(math.ceil(rows / batch_size) / num_workers)
    return math.ceil(batches_per_worker / accumulation)


def total_steps(rows: int, training) -> int:
    """`max_steps` when set, else `epochs` worth of optimizer steps (rounded up)."""
    if training.max_steps > 0:
        return training.max_steps
    per_epoch = steps_per_epoch(rows, training.batch_size, training.num_workers, training.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * training.epochs))


def warmup_steps(total: int, warmup_ratio: float) -> int:
    return math.ceil(total * warmup_ratio)
