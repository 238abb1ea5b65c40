"""Conversations as prompts: the chat template or the plain one, every turn in order, the oldest dropped."""

from __future__ import annotations

import copy

import pytest

from medqa.modeling import chat

TURNS = [{"role": "system", "content": "You are a careful pharmacist."},
         {"role": "user", "content": "I take warfarin."},
         {"role": "assistant", "content": "Noted: warfarin."},
         {"role": "user", "content": "Can I take ibuprofen?"}]


@pytest.fixture(scope="module")
def tokenizers(tiny):
    plain = copy.deepcopy(tiny[1])
    plain.chat_template = None
    return {"template": tiny[1], "plain": plain}


@pytest.mark.parametrize("kind", ["template", "plain"])
def test_every_turn_is_in_the_prompt_in_order(tokenizers, kind):
    prompt = chat.render(tokenizers[kind], TURNS)
    positions = [prompt.index(m["content"]) for m in TURNS]
    assert positions == sorted(positions)
    assert prompt.rstrip().endswith("Assistant:" if kind == "plain" else "assistant")
    assert chat.stops(tokenizers[kind]) == (chat.PLAIN_STOP if kind == "plain" else ())


def test_the_oldest_turns_are_dropped_to_fit_and_the_system_prompt_kept(tokenizers):
    tok = tokenizers["template"]
    long = [TURNS[0], {"role": "user", "content": "blood pressure " * 60},
            {"role": "assistant", "content": "ok " * 60}] + TURNS[1:]
    whole = chat.count(tok, chat.render(tok, long))
    kept, dropped = chat.fit(tok, long, whole - 1)
    assert dropped >= 1 and kept[0] == TURNS[0] and kept[-3:] == TURNS[1:]
    assert chat.count(tok, chat.render(tok, kept)) <= whole - 1
    assert chat.fit(tok, long, whole) == (long, 0)


def test_a_conversation_that_cannot_fit_is_an_error(tokenizers):
    with pytest.raises(ValueError, match="does not fit"):
        chat.fit(tokenizers["template"], TURNS, 5)
    with pytest.raises(ValueError, match="user message"):
        chat.fit(tokenizers["template"], TURNS[:1], 1000)
