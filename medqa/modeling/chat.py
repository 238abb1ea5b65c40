"""Whole conversations as a model's prompt: its own chat template (a plain one when it has
none), and the oldest turns dropped when the conversation does not fit its context.

    prompt = render(tokenizer, messages)            # system, user and assistant turns, in order
    kept, dropped = fit(tokenizer, messages, 1024)  # the newest turns that fit 1024 tokens

Messages are OpenAI's `{"role": "system" | "user" | "assistant", "content": str}`.
May import: nothing of medqa.
"""

from __future__ import annotations

from typing import Sequence

PLAIN_STOP = ("\nUser:", "\nSystem:")
"""Where an answer under the plain template ends: the model has started the next turn."""

_PLAIN_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


def has_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def render(tokenizer, messages: Sequence[dict]) -> str:
    """The prompt for `messages`, ending where the assistant's reply begins."""
    if has_template(tokenizer):
        return tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    turns = [f"{_PLAIN_ROLES[m['role']]}: {m['content'].strip()}" for m in messages]
    return "\n\n".join(turns + ["Assistant:"])


def stops(tokenizer) -> tuple[str, ...]:
    """Stop sequences for this tokenizer's prompts: none with a template (its end-of-turn token
    is the model's end of sequence), the next turn's marker with the plain one."""
    return () if has_template(tokenizer) else PLAIN_STOP


def count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def fit(tokenizer, messages: Sequence[dict], budget_tokens: int) -> tuple[list[dict], int]:
    """(the messages to send, how many were dropped): system messages always, then as many of
    the newest other turns as fit `budget_tokens`, the last user message always. ValueError
    when even the system prompt and the last user message do not fit."""
    messages = list(messages)
    system = [m for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    last_user = max((i for i, m in enumerate(turns) if m["role"] == "user"), default=None)
    if last_user is None:
        raise ValueError("a conversation needs a user message")
    # Never drop the last user message or what follows it; drop from the oldest end.
    for start in range(last_user + 1):
        kept = system + turns[start:]
        if count(tokenizer, render(tokenizer, kept)) <= budget_tokens:
            return kept, start
    raise ValueError(f"the conversation does not fit the model's context: the system prompt and the last user "
                     f"message alone are more than {budget_tokens} tokens")
