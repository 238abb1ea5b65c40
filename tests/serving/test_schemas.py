"""Request bodies: what the schemas reject, and the coercions they make on purpose."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medqa.serving.schemas import ChatCompletionRequest, GenerateRequest, MCQRequest

GOOD_OPTIONS = ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    "body",
    [
        {"question": "", "options": GOOD_OPTIONS},
        {"question": 3, "options": GOOD_OPTIONS},
        {"question": "q", "options": ["a", "b", "c"]},
        {"question": "q", "options": ["a", "b", "c", "d", "e"]},
        {"question": "q", "options": ["a", "b", " ", "d"]},
        {"question": "q", "opa": "a", "opb": "b", "opc": "c"},
        {"question": "q", "options": GOOD_OPTIONS, "opa": "a"},
        {"question": "q", "options": GOOD_OPTIONS, "unknown": 1},
        {"question": "q", "options": GOOD_OPTIONS, "abstain_threshold": 1.5},
    ],
)
def test_bad_mcq_requests_are_rejected(body):
    with pytest.raises(ValidationError):
        MCQRequest.model_validate(body)


def test_tiny_temperatures_decode_greedily():
    assert GenerateRequest.model_validate({"question": "q", "temperature": 1e-300}).temperature == 0.0
    assert GenerateRequest.model_validate({"question": "q", "temperature": 0.5}).temperature == 0.5
    assert ChatCompletionRequest.model_validate(
        {"messages": [{"role": "user", "content": "x"}], "temperature": 1e-9}).temperature == 0.0


def test_lettered_options_become_a_list():
    req = MCQRequest.model_validate({"question": "q", "opa": "a", "opb": "b", "opc": "c", "opd": "d"})
    assert req.options == GOOD_OPTIONS


@pytest.mark.parametrize(
    "body",
    [
        {"question": "q", "temperature": -0.1}, {"question": "q", "temperature": 2.5},
        {"question": "q", "temperature": "hot"}, {"question": "q", "max_length": 0},
        {"question": "q", "use_safety": "no"}, {"question": "q", "temperature": float("nan")},
        {"question": "   "}, {"question": "\u00a0\n\t"}, {"question": ""},
    ],
)
def test_bad_generate_requests_are_rejected(body):
    with pytest.raises(ValidationError):
        GenerateRequest.model_validate(body)


@pytest.mark.parametrize(
    "body",
    [{"messages": []}, {"messages": [{"role": "system", "content": "x"}]},
     {"messages": [{"role": "robot", "content": "x"}]},
     {"messages": [{"role": "user", "content": "x"}], "stream": "yes"},
     {"messages": [{"role": "user", "content": "x"}], "n": 2}],
)
def test_bad_chat_requests_are_rejected(body):
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)
