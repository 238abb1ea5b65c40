"""Prompt templates: the one place that decides what the model sees.

Training, evaluation and serving all format questions here, so a model is
scored and served on exactly the text it was trained on. The multiple-choice
layout and the " A".." D" continuations follow lm-evaluation-harness's
`medmcqa` task, so zero-shot numbers are comparable with it.
"""

from __future__ import annotations

from typing import Sequence

from medqa.data.record import LETTERS, MCQRecord

ANSWER_PREFIX = "Answer:"
EXPLANATION_PREFIX = "Explanation:"


def mcq_prompt(question: str, options: Sequence[str]) -> str:
    """The prompt ending right before the answer letter."""
    lines = [f"Question: {question.strip()}", "Choices:"]
    lines += [f"{letter}. {text.strip()}" for letter, text in zip(LETTERS, options)]
    lines.append(ANSWER_PREFIX)
    return "\n".join(lines)


def letter_continuations(n_options: int = 4) -> list[str]:
    """What is scored after the prompt: " A", " B", ... (harness target delimiter)."""
    return [f" {letter}" for letter in LETTERS[:n_options]]


def mcq_target(record: MCQRecord, with_explanation: bool = False) -> str:
    """The training target that follows `mcq_prompt`: the letter, optionally the explanation."""
    if record.answer_index is None:
        raise ValueError(f"record {record.id or record.question[:40]!r} has no answer to train on")
    target = f" {record.answer_letter}. {record.answer_text.strip()}"
    if with_explanation and record.explanation.strip():
        target += f"\n{EXPLANATION_PREFIX} {record.explanation.strip()}"
    return target


def record_prompt(record: MCQRecord) -> str:
    return mcq_prompt(record.question, record.options)


def open_question_prompt(question: str, concise: bool = False) -> str:
    """Free-text question for generation (serving, explanation metrics)."""
    instruction = "Answer in one or two sentences.\n" if concise else ""
    return f"{instruction}Question: {question.strip()}\n{ANSWER_PREFIX}"
