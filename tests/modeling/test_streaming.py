"""Streamed generation: pieces as they are decoded, the same answer as without streaming,
stop sequences cut exactly, early stops on request."""

from __future__ import annotations

import pytest

from medqa.modeling.generation import InferencePipeline, StopGate, held_back

PROMPT = "Metformin lowers"
GREEDY = dict(temperature=0, max_length=12)  # the random tiny model answers this prompt with several words


@pytest.fixture(scope="module")
def pipe(tiny):
    return InferencePipeline(*tiny)


def _stream(pipe, **kwargs):
    pieces = []
    summary = pipe.stream(PROMPT, pieces.append, **{**GREEDY, **kwargs})
    return pieces, summary


def test_pieces_arrive_while_generating_and_join_to_the_unstreamed_answer(pipe):
    passes, seen_at = [0], []
    hook = pipe.model.register_forward_hook(lambda *_: passes.__setitem__(0, passes[0] + 1))
    try:
        summary = pipe.stream(PROMPT, lambda piece: seen_at.append((passes[0], piece)), **GREEDY)
    finally:
        hook.remove()
    pieces = [piece for _, piece in seen_at]
    assert len(pieces) >= 3 and all(pieces)
    during = [n for n, _ in seen_at][:-1]  # the last piece is the streamer's flush at the end
    assert during == sorted(set(during))  # each piece after a new forward pass, not all at the end
    assert seen_at[0][0] < passes[0]  # the first piece came before generation ended
    assert "".join(pieces).strip() == pipe.generate_batch(prompts=[PROMPT], **GREEDY)[0] == summary.text.strip()
    assert summary.finish_reason == "length" and summary.completion_tokens == GREEDY["max_length"]
    assert summary.prompt_tokens == pipe.count_tokens(PROMPT)


def test_sampled_with_a_seed_it_streams_the_unstreamed_answer(pipe):
    sampled = dict(temperature=1.0, seed=3, max_length=10)
    pieces = []
    pipe.stream(PROMPT, pieces.append, **sampled)
    assert "".join(pieces).strip() == pipe.generate_batch(prompts=[PROMPT], **sampled)[0]


def _a_later_word(text: str) -> str:
    words = text.split()
    return next(w for w in words[1:] if w != words[0])


def test_a_stop_sequence_ends_the_stream_exactly_before_it(pipe):
    whole = pipe.generate_batch(prompts=[PROMPT], **GREEDY)[0]
    word = _a_later_word(whole)
    pieces, summary = _stream(pipe, stop=(word,))
    assert "".join(pieces).strip() == whole[:whole.index(word)].strip() != ""
    assert not any(word in piece for piece in pieces) and word not in summary.text
    assert summary.finish_reason == "stop" and summary.completion_tokens < GREEDY["max_length"]


def test_text_held_back_as_a_possible_stop_is_released_when_it_is_not_one(pipe):
    whole = pipe.generate_batch(prompts=[PROMPT], **GREEDY)[0]
    near_miss = whole.split()[0] + " " + _a_later_word(whole)[:2] + "\u2603"  # its start appears, it never does
    pieces, summary = _stream(pipe, stop=(near_miss,))
    assert "".join(pieces).strip() == whole and summary.finish_reason == "length"


def test_asked_to_stop_it_stops(pipe):
    full, _ = _stream(pipe)
    pieces = []
    summary = pipe.stream(PROMPT, pieces.append, should_stop=lambda: bool(pieces), **GREEDY)
    # It stops at the next token after the first piece (the streamer then flushes the word it holds).
    assert len(pieces) < len(full) and summary.completion_tokens < GREEDY["max_length"]
    assert summary.finish_reason == "stop" and "".join(full).startswith("".join(pieces).strip())


def test_beam_search_cannot_stream(pipe):
    with pytest.raises(ValueError, match="num_beams"):
        pipe.stream(PROMPT, print, num_beams=2)


@pytest.mark.parametrize("text, stops, held", [("answer\nQue", ("\nQuestion:",), 4), ("answer", ("\nQuestion:",), 0),
                                               ("a\n", ("\nQuestion:", "\nChoices:"), 1), ("ab", (), 0)])
def test_text_that_may_start_a_stop_sequence_is_held_back(text, stops, held):
    assert held_back(text, stops) == held


@pytest.mark.parametrize("chunks, stops, shown, hit", [
    (["  Take ", "it\nQue", "stion: next"], ("\nQuestion:",), ["Take ", "it", ""], True),
    (["Take ", "it\nQue", "ue more"], ("\nQuestion:",), ["Take ", "it", "\nQueue more"], False),
    (["a\nQ", "uestion"], ("\nQuestion:",), ["a", "\nQuestion"], False),  # the end releases what is held
    (["one STOP two"], ("STOP", "one"), [""], True),  # the earliest stop sequence wins
    (["x", "y"], (), ["x", "y"], False),
])
def test_the_gate_shows_text_up_to_a_stop_sequence_and_holds_what_may_start_one(chunks, stops, shown, hit):
    gate = StopGate(stops)
    got = [gate.feed(c, final=i == len(chunks) - 1) for i, c in enumerate(chunks)]
    assert got == shown and gate.hit == hit
    assert gate.feed("after") == ("" if hit else "after")


@pytest.mark.slow
def test_smollm2_streams_a_conversation_as_it_answers_it(smollm2_path):
    """The real instruct model under its own chat template: a system prompt and two turns, streamed
    word by word, greedy, the same answer as without streaming."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medqa.modeling import chat

    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    pipe = InferencePipeline(AutoModelForCausalLM.from_pretrained(smollm2_path), tokenizer)
    prompt = chat.render(tokenizer, [{"role": "system", "content": "You are a pharmacology tutor. Answer briefly."},
                                     {"role": "user", "content": "What class of drug is metformin?"},
                                     {"role": "assistant", "content": "Metformin is a biguanide."},
                                     {"role": "user", "content": "What does it lower?"}])
    assert "pharmacology tutor" in prompt and prompt.index("biguanide") < prompt.index("What does it lower?")
    pieces = []
    summary = pipe.stream(prompt, pieces.append, temperature=0, max_length=24, stop=chat.stops(tokenizer))
    assert len(pieces) >= 5 and summary.text.strip()
    assert "".join(pieces).strip() == pipe.generate_batch(prompts=[prompt], temperature=0, max_length=24,
                                                          stop=chat.stops(tokenizer))[0]
