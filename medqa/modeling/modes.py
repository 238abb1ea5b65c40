"""How a loaded model is used for a call: in eval mode, on its own device, with a pad token.

Scoring, generation, the training probe and export all need these; they are written once here.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import torch


@contextmanager
def eval_mode(model) -> Iterator:
    """Eval mode (no dropout) for the block, then the model as it came: the trainer scores
    and probes mid-run, and must get a training model back."""
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        yield model
    finally:
        if was_training:
            model.train()


def model_device(model) -> "torch.device":
    """Where the model's inputs go (its first parameter's device; a ZeRO-3 placeholder counts)."""
    return next(model.parameters()).device


def ensure_pad_token(tokenizer):
    """Give a tokenizer without a pad token its end-of-sequence token as one (batched
    tokenisation needs it); returns the tokenizer."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def pad_token_id(tokenizer) -> int:
    """The id batches are padded with: the tokenizer's pad token, else its end of sequence
    (what `ensure_pad_token` makes the pad token), else 0."""
    for tid in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if tid is not None:
            return tid
    return 0
