"""Prompt template and label masks: masked tokens are exactly the prompt."""

from __future__ import annotations

import pytest

from medqa.data.prompts import mcq_prompt, mcq_target
from medqa.data.record import MCQRecord
from medqa.data.tokenize import IGNORE_INDEX, build_example, build_examples

REC = MCQRecord("Which vitamin deficiency causes scurvy?", ["Vitamin A", "Vitamin B12", "Vitamin C", "Vitamin D"], 2,
                id="s", explanation="Ascorbic acid is needed to hydroxylate proline and lysine in collagen.")


def test_prompt_template():
    prompt = mcq_prompt(REC.question, REC.options)
    assert prompt.splitlines() == ["Question: Which vitamin deficiency causes scurvy?", "Choices:", "A. Vitamin A",
                                   "B. Vitamin B12", "C. Vitamin C", "D. Vitamin D", "Answer:"]
    assert mcq_target(REC) == " C. Vitamin C"
    assert mcq_target(REC, with_explanation=True).endswith("\nExplanation: " + REC.explanation)


@pytest.mark.parametrize("loss_on", ["answer", "answer_explanation"])
def test_masked_tokens_are_exactly_the_prompt(tiny_tokenizer, loss_on):
    ex = build_example(tiny_tokenizer, REC, loss_on, max_length=512)
    prompt_ids = tiny_tokenizer(mcq_prompt(REC.question, REC.options))["input_ids"]
    n = len(prompt_ids)
    assert ex["input_ids"][:n] == prompt_ids
    assert ex["labels"][:n] == [IGNORE_INDEX] * n
    assert IGNORE_INDEX not in ex["labels"][n:]
    assert ex["labels"][n:] == ex["input_ids"][n:]
    assert ex["input_ids"][-1] == tiny_tokenizer.eos_token_id
    assert ex["length"] == len(ex["input_ids"]) == len(ex["labels"])
    target = tiny_tokenizer.decode(ex["input_ids"][n:-1])
    assert target == mcq_target(REC, loss_on == "answer_explanation")


def test_batch_equals_single(tiny_tokenizer):
    other = MCQRecord("Q2?", ["a", "b", "c", "d"], 0, id="q2")
    assert build_examples(tiny_tokenizer, [REC, other]) == [build_example(tiny_tokenizer, REC),
                                                            build_example(tiny_tokenizer, other)]


def test_truncation_keeps_the_target_and_cuts_the_question_start(tiny_tokenizer):
    long = MCQRecord("history " * 300 + "What is the diagnosis?", ["a", "b", "c", "d"], 1, id="l")
    ex = build_example(tiny_tokenizer, long, max_length=64)
    assert ex["length"] == 64
    kept = [t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE_INDEX]
    assert tiny_tokenizer.decode(kept[:-1]) == " B. b"
    assert "Answer:" in tiny_tokenizer.decode(ex["input_ids"])


def test_unanswered_record_is_refused(tiny_tokenizer):
    with pytest.raises(ValueError, match="no answer"):
        build_example(tiny_tokenizer, MCQRecord("Q?", ["a", "b", "c", "d"], None))
