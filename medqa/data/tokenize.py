"""Tokenisation with label masks: the model learns the answer, not the question.

`labels` equal `input_ids` on the target (" C. <answer text>", optionally the
explanation, then EOS) and -100 on every prompt token, so the loss ignores the
prompt. Prompt and target are tokenised separately, exactly as evaluation
scores " A".." D" after `mcq_prompt`, so the boundary is the same.
"""

from __future__ import annotations

from typing import Literal, Sequence

from medqa.data.prompts import mcq_prompt, mcq_target
from medqa.data.record import MCQRecord

IGNORE_INDEX = -100
LossOn = Literal["answer", "answer_explanation"]


def _fit(prompt: list[int], target: list[int], max_length: int, keep_first: bool) -> tuple[list[int], list[int]]:
    """Cut to max_length: the target is kept whole when it fits; the prompt loses its
    beginning (the start of a long question), keeping a leading BOS token."""
    if len(prompt) + len(target) <= max_length:
        return prompt, target
    target = target[: max_length - 1] if len(target) >= max_length else target
    room = max_length - len(target)
    head = prompt[:1] if keep_first and room > 0 else []
    tail = prompt[len(prompt) - (room - len(head)):] if room - len(head) > 0 else []
    return head + tail, target


def build_examples(tokenizer, records: Sequence[MCQRecord], loss_on: LossOn = "answer",
                   max_length: int = 512) -> list[dict]:
    """Batch version of `build_example` (one fast-tokenizer call per side)."""
    if not records:
        return []
    with_exp = loss_on == "answer_explanation"
    prompts = tokenizer([mcq_prompt(r.question, r.options) for r in records], add_special_tokens=True)["input_ids"]
    targets = tokenizer([mcq_target(r, with_exp) for r in records], add_special_tokens=False)["input_ids"]
    eos = tokenizer.eos_token_id
    bos = getattr(tokenizer, "bos_token_id", None)
    out = []
    for p, t in zip(prompts, targets):
        t = list(t) + ([eos] if eos is not None else [])
        p, t = _fit(list(p), t, max_length, keep_first=bos is not None and p[:1] == [bos])
        out.append({"input_ids": p + t, "labels": [IGNORE_INDEX] * len(p) + t,
                    "length": len(p) + len(t), "prompt_length": len(p)})
    return out


def build_example(tokenizer, record: MCQRecord, loss_on: LossOn = "answer", max_length: int = 512) -> dict:
    """{"input_ids", "labels", "length", "prompt_length"} for one record; labels are -100 on the prompt."""
    return build_examples(tokenizer, [record], loss_on, max_length)[0]
