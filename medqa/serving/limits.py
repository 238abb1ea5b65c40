"""The operator's request limits (`ServingConfig`), checked after authentication and
before any work: sizes get 413, counts and settings beyond the server's get 422."""

from __future__ import annotations

from typing import Sequence

from medqa.config import ServingConfig
from medqa.serving.errors import ApiError


def check_text(serving: ServingConfig, text: str, what: str = "question") -> None:
    if len(text) > serving.max_question_chars:
        raise ApiError(413, f"{what} is {len(text)} characters; this server takes at most {serving.max_question_chars}")


def check_options(serving: ServingConfig, options: Sequence[str]) -> None:
    for letter, text in zip("ABCD", options):
        if len(text) > serving.max_option_chars:
            raise ApiError(413, f"option {letter} is {len(text)} characters; this server takes at most "
                                f"{serving.max_option_chars}")


def check_generation(serving: ServingConfig, new_tokens: int, stops: Sequence[str], field: str) -> None:
    if new_tokens > serving.max_new_tokens:
        raise ApiError(422, f"{field}: at most {serving.max_new_tokens} new tokens on this server")
    if len(stops) > serving.max_stop_sequences:
        raise ApiError(422, f"stop: at most {serving.max_stop_sequences} stop sequences on this server")
    for stop in stops:
        check_text(serving, stop, "a stop sequence")


def check_messages(serving: ServingConfig, messages: Sequence[dict]) -> None:
    if len(messages) > serving.max_messages:
        raise ApiError(422, f"messages: at most {serving.max_messages} on this server")
    for i, m in enumerate(messages):
        check_text(serving, m["content"], f"messages[{i}].content")
