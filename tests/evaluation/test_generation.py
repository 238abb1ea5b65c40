"""Offline ROUGE/BLEU, perplexity, verbosity and the generation helper."""

import math

import pytest

from medqa.evaluation import generation
from medqa.modeling.generation import GenerationOptions, InferencePipeline, cut_at_stop, generate_kwargs


def test_rouge_loads_offline_and_gives_hand_values(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rouge = generation.load_metric("rouge")
    result = rouge.compute(predictions=["the cat sat on the mat", "hello"],
                           references=["the cat is on the mat", "hello there"])
    # unigrams: 5/6 overlap -> F 5/6; "hello" vs "hello there": P 1, R 1/2 -> F 2/3; mean 0.75
    assert result["rouge1"] == pytest.approx(0.75)
    # bigrams: 3 of 5 shared -> 0.6; a one-word prediction has no bigram -> 0; mean 0.3
    assert result["rouge2"] == pytest.approx(0.3)
    assert generation.rouge_l(["a b c d"], ["a b x d"]) == pytest.approx(0.75)  # LCS 3 of 4


def test_bleu_loads_offline_and_gives_hand_values():
    assert generation.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0)
    result = generation.load_metric("bleu").compute(predictions=["the cat sat on the mat"],
                                                    references=[["the cat is on the mat"]])
    # 1-gram 5/6, 2-gram 3/5, 3-gram 1/4, 4-gram 0/3 (exp smoothing), equal lengths so BP = 1
    assert result["precisions"][:3] == pytest.approx([5 / 6, 3 / 5, 1 / 4])
    assert result["brevity_penalty"] == 1.0
    assert generation.bleu(["completely different words"], ["the cat is on the mat"]) < 0.05


def test_verbosity_and_perplexity():
    assert generation.verbosity("one two three four", "one two") == 2.0
    assert generation.verbosity("", "") == 0.0
    assert generation.perplexity(-2 * math.log(4), 2) == pytest.approx(4.0)


def test_evaluate_generation_on_tiny_model(tiny, records):
    from medqa.data.prompts import open_question_prompt
    from medqa.modeling.scoring import continuation_loglikelihoods

    model, tokenizer = tiny
    result = generation.evaluate_generation(model, tokenizer, records, n=2, max_new_tokens=8)
    assert result["n"] == 2 and len(result["samples"]) == 2
    assert 0 <= result["rougeL"] <= 1 and 0 <= result["bleu"] <= 1
    ll, n_tokens = continuation_loglikelihoods(
        model, tokenizer, [(open_question_prompt(records[0].question), generation.explanation_target(records[0]))])[0]
    assert result["samples"][0]["perplexity"] == pytest.approx(math.exp(-ll / n_tokens), rel=1e-4)
    assert result["perplexity"] > 1  # a random model is far from certain


def test_greedy_generation_is_deterministic(tiny):
    model, tokenizer = tiny
    pipe = InferencePipeline(model, tokenizer)
    first = pipe.generate("What is the antidote for heparin?", temperature=0, max_length=6, stop=())
    assert first == pipe.generate("What is the antidote for heparin?", temperature=0, max_length=6, stop=())
    assert isinstance(first, str) and first
    batch = pipe.generate_batch(["What is the antidote for heparin?", "Short?"], temperature=0, max_length=6, stop=())
    assert batch[0] == first  # left padding does not change the greedy answer
    with pytest.raises(ValueError):
        pipe.generate("  ")


def test_generation_stops_when_asked(tiny):
    model, tokenizer = tiny
    pipe = InferencePipeline(model, tokenizer)
    asked = []

    def should_stop() -> bool:  # asked after every new token; says stop after the third
        asked.append(1)
        return len(asked) >= 3

    stopped = pipe.generate_batch(["What is the antidote for heparin?"] * 2, temperature=0, max_length=40, stop=(),
                                  should_stop=should_stop)
    full = pipe.generate_batch(["What is the antidote for heparin?"] * 2, temperature=0, max_length=40, stop=())
    n = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert len(asked) == 3 and all(n(a) < n(b) for a, b in zip(stopped, full))
    assert all(b.startswith(a) for a, b in zip(stopped, full))  # the same answer, cut short


def test_generation_options():
    assert cut_at_stop("Metformin.\nQuestion: next", ["\nQuestion:"]) == "Metformin."
    greedy = generate_kwargs(GenerationOptions(temperature=0), pad_token_id=0)
    assert greedy["do_sample"] is False and "temperature" not in greedy
    sampled = generate_kwargs(GenerationOptions(temperature=0.7, num_beams=2, length_penalty=0.5), pad_token_id=0)
    assert sampled["do_sample"] and sampled["temperature"] == 0.7 and sampled["length_penalty"] == 0.5
    with pytest.raises(ValueError):
        GenerationOptions(max_new_tokens=0)
