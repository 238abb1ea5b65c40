"""The scorer against hand computations, batching, letter/text agreement, adapters."""

import math

import pytest
import torch

from medqa.data.prompts import letter_continuations, mcq_prompt, open_question_prompt
from medqa.data.record import MCQRecord
from medqa.modeling.scoring import encode_pair, mcq_accuracy, score_records


def _logprobs(model, ids):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)


def hand_letter_loglikelihoods(model, tokenizer, record):
    """One unbatched forward over the prompt; log-probability of each letter token after it."""
    prompt = mcq_prompt(record.question, record.options)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    last = _logprobs(model, ids)[-1]
    out = []
    for cont in letter_continuations():
        whole = tokenizer(prompt + cont, add_special_tokens=False)["input_ids"]
        (token,) = whole[len(ids):]
        out.append(last[token].item())
    return out


def hand_text_loglikelihoods(model, tokenizer, record):
    """Per option: one forward over prompt + option; sum of the option tokens' log-probabilities."""
    prompt = open_question_prompt(record.question)
    ctx = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    out = []
    for option in record.options:
        whole = tokenizer(prompt + " " + option, add_special_tokens=False)["input_ids"]
        lp = _logprobs(model, whole)
        out.append(sum(lp[p - 1, whole[p]].item() for p in range(len(ctx), len(whole))))
    return out


@pytest.mark.parametrize("method, hand", [("letter", hand_letter_loglikelihoods), ("text", hand_text_loglikelihoods)])
def test_batched_scores_equal_hand_computation(tiny, records, method, hand):
    model, tokenizer = tiny
    scores = score_records(model, tokenizer, records, method=method, batch_size=8)
    for record, score in zip(records, scores):
        assert score.loglikelihoods == pytest.approx(hand(model, tokenizer, record), abs=1e-4)
        assert sum(score.probabilities) == pytest.approx(1.0)
        assert score.predicted_index == max(range(4), key=score.probabilities.__getitem__)
        assert score.confidence == max(score.probabilities)


def test_letter_probabilities_are_softmax_of_loglikelihoods(tiny, records):
    model, tokenizer = tiny
    score = score_records(model, tokenizer, records[:1])[0]
    expected = torch.softmax(torch.tensor(score.loglikelihoods), dim=0).tolist()
    assert score.probabilities == pytest.approx(expected, abs=1e-6)


def test_text_method_compares_per_byte(tiny):
    """A long option with a larger total log-likelihood loss can still win per byte (acc_norm)."""
    from medqa.modeling.scoring import make_score

    score = make_score([-10.0, -30.0, -12.0, -11.0], [5, 40, 5, 5], "text")
    assert score.predicted_index == 1  # -0.75/byte beats -2/byte
    assert make_score([-10.0, -30.0, -12.0, -11.0], [5, 40, 5, 5], "letter").predicted_index == 0


@pytest.mark.parametrize("method", ["letter", "text"])
def test_batch_size_does_not_change_scores(tiny, records, method):
    model, tokenizer = tiny
    one = score_records(model, tokenizer, records, method=method, batch_size=1)
    many = score_records(model, tokenizer, records, method=method, batch_size=8)
    three = score_records(model, tokenizer, records, method=method, batch_size=3)
    for a, b, c in zip(one, many, three):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-4)
        assert a.loglikelihoods == pytest.approx(c.loglikelihoods, abs=1e-4)


def test_letter_method_uses_one_forward_per_question(tiny, records):
    model, tokenizer = tiny
    calls = []
    handle = model.register_forward_hook(lambda mod, args, kwargs_out: calls.append(1))
    try:
        score_records(model, tokenizer, records, method="letter", batch_size=1)
    finally:
        handle.remove()
    assert len(calls) == len(records)


@pytest.mark.parametrize("target", [0, 1, 2, 3])
def test_letter_and_text_scoring_agree_when_the_model_knows_the_answer(tiny, target):
    """Bias the output layer towards option `target`'s tokens (its letter and its text):
    both methods must then pick `target`, whatever the random weights prefer."""
    model, tokenizer = tiny
    options = ["penicillin", "warfarin", "digoxin", "lithium"]
    record = MCQRecord(question="Which drug is it?", options=options, answer_index=target)
    favoured = set(tokenizer(f" {options[target]}", add_special_tokens=False)["input_ids"])
    favoured |= set(tokenizer(letter_continuations()[target], add_special_tokens=False)["input_ids"])
    bias = torch.zeros(model.config.vocab_size)
    bias[list(favoured)] = 25.0
    handle = model.lm_head.register_forward_hook(lambda mod, args, out: out + bias)
    try:
        letter = score_records(model, tokenizer, [record], method="letter")[0]
        text = score_records(model, tokenizer, [record], method="text")[0]
    finally:
        handle.remove()
    assert letter.predicted_index == text.predicted_index == target
    assert letter.confidence > 0.99


def test_encode_pair_follows_the_harness(tiny):
    _, tokenizer = tiny
    ctx, cont = encode_pair(tokenizer, "Answer: ", "B")
    assert tokenizer.decode(ctx) == "Answer:" and tokenizer.decode(cont) == " B"


def test_peft_model_scores_like_its_base_before_training(tiny, records):
    """A fresh LoRA adapter is a no-op (B = 0), so the PeftModel scores like the base."""
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny
    base = score_records(model, tokenizer, records[:3])
    import copy

    peft_model = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))
    adapted = score_records(peft_model, tokenizer, records[:3])
    for a, b in zip(base, adapted):
        assert a.loglikelihoods == pytest.approx(b.loglikelihoods, abs=1e-5)


def test_4bit_model_scores(tiny_model_path, records):
    from medqa.config import ModelConfig
    from medqa.modeling.loading import load_model, load_tokenizer

    cfg = ModelConfig(name=tiny_model_path, load_in_4bit=True)
    model, tokenizer = load_model(cfg), load_tokenizer(cfg)
    scores = score_records(model, tokenizer, records[:3], batch_size=2)
    assert all(math.isfinite(x) for s in scores for x in s.loglikelihoods)
    assert all(sum(s.probabilities) == pytest.approx(1.0) for s in scores)


def test_mcq_accuracy_matches_scores_and_restores_training_mode(tiny, records):
    model, tokenizer = tiny
    scores = score_records(model, tokenizer, records)
    expected = sum(s.predicted_index == r.answer_index for s, r in zip(scores, records)) / len(records)
    model.train()
    try:
        assert mcq_accuracy(model, tokenizer, records) == pytest.approx(expected)
        assert model.training
    finally:
        model.eval()


def test_bad_arguments_are_clear_errors(tiny, records):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="method"):
        score_records(model, tokenizer, records, method="bytes")
    with pytest.raises(ValueError, match="answer_index"):
        mcq_accuracy(model, tokenizer, [MCQRecord(question="q", options=["a", "b", "c", "d"])])
