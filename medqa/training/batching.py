"""Turning tokenised examples into training batches (pure: numpy and torch only).

Three strategies, chosen by `training.batching` (benchmarks/RESULTS.md has the
measurements):

- `padding`: batches in data order, each padded to its own longest example.
- `group_by_length`: rows are sorted by length inside windows of
  `GROUP_WINDOW` batches before batching (HF's `LengthGroupedSampler` idea), so
  a batch holds examples of similar length and carries little padding.
- `packing`: whole examples are packed first-fit into rows of at most
  `max_length` tokens. Each row carries `position_ids` that restart at 0 for
  every example and no attention mask: transformers then builds a
  block-diagonal causal mask from the position ids
  (`masking_utils.find_packed_sequence_indices`; only without a KV cache, so
  `use_cache=False` as `load_model` sets), so packed examples never see each
  other (tests/training/test_pure.py checks the logits match unpacked runs). The unused tail of a row is one more "example" of pad tokens
  whose labels are -100.

The row transforms (`group_by_length`, `pack_rows`) run in Ray Data
`map_batches` on the driver's dataset, so workers receive ready rows and only
pad (`collate`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

IGNORE_INDEX = -100
GROUP_WINDOW = 16
"""Batches per length-sorting window; larger windows pad less but shuffle less."""


def _rows(batch: dict[str, Any]) -> list[dict[str, Any]]:
    keys = list(batch)
    n = len(batch[keys[0]]) if keys else 0
    return [{k: batch[k][i] for k in keys} for i in range(n)]


def _columns(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    return {k: [r[k] for r in rows] for k in keys}


def group_by_length(batch: dict[str, Any]) -> dict[str, Any]:
    """Sort one window of rows by length, longest first (a Ray Data `map_batches` fn)."""
    order = np.argsort(-np.asarray(batch["length"]), kind="stable")
    return {k: [batch[k][i] for i in order] for k in batch}


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
    """Optimizer steps in one pass over `rows` examples split evenly across workers.

    Ray Data splits the rows equally (dropping the remainder), and each worker
    yields ceil(share / batch_size) micro-batches.
    """
    share = rows // num_workers
    if share == 0:
        raise ValueError(f"{rows} training rows cannot be split across {num_workers} workers")
    return max(1, math.ceil(share / batch_size) // accumulation)


def total_steps(rows: int, training) -> int:
    """`max_steps` when set, else `epochs` worth of optimizer steps (rounded up)."""
    if training.max_steps > 0:
        return training.max_steps
    per_epoch = steps_per_epoch(rows, training.batch_size, training.num_workers, training.gradient_accumulation_steps)
    return max(1, math.ceil(per_epoch * training.epochs))


def warmup_steps(total: int, warmup_ratio: float) -> int:
    return math.ceil(total * warmup_ratio)
