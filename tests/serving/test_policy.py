"""Pure serving decisions and request schemas (no Ray, no model)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from medqa.serving import policy
from medqa.serving.schemas import ChatCompletionRequest, GenerateRequest, MCQRequest


@pytest.mark.parametrize(
    "raw, risk, decision",
    [
        ({}, 0, policy.ANSWER),
        ({"risk_level": 1, "categories": ["dosage"], "warnings": ["dose above the usual maximum"]}, 1, policy.ANSWER),
        ({"risk_level": 3, "categories": ["emergency"]}, 3, policy.EMERGENCY),
        ({"risk_level": 0, "categories": ["emergency"]}, 3, policy.EMERGENCY),  # emergency is always critical
        ({"risk_level": 2, "categories": ["harmful_request"], "blocked": True}, 2, policy.REFUSE),
        ({"risk_level": 2, "categories": ["harmful_request"]}, 2, policy.REFUSE),
        ({"risk_level": 3, "categories": ["emergency", "harmful_request"], "blocked": True}, 3, policy.EMERGENCY),
        ({"risk_level": 9}, 3, policy.ANSWER),  # clamped, but nothing to act on
    ],
)
def test_reports_are_normalised_and_decided(raw, risk, decision):
    report = policy.normalise_report(raw)
    assert report["risk_level"] == risk
    assert set(report) >= {"checked", "risk_level", "categories", "warnings", "blocked", "actions"}
    assert policy.decide(report) == decision


def test_report_objects_and_unserialisable_fields_are_accepted():
    class Report:
        def __init__(self):
            self.risk_level, self.categories = 2, ("drug_interaction",)
            self.warnings, self.blocked = "warfarin + aspirin", False
            self.matcher = object()

    report = policy.normalise_report(Report())
    assert report["categories"] == ["drug_interaction"] and report["warnings"] == ["warfarin + aspirin"]
    assert "matcher" not in report


def test_refusal_gives_a_reason():
    report = policy.normalise_report({"categories": ["harmful_request"], "blocked": True,
                                      "reason": "asks how to overdose someone"})
    assert policy.refusal_message(report).endswith("Reason: asks how to overdose someone")
    bare = policy.normalise_report({"categories": ["harmful_request"], "blocked": True})
    assert "harmful_request" in policy.refusal_message(bare)


def test_merge_keeps_the_worst_risk_and_every_warning_once():
    a = policy.normalise_report({"risk_level": 1, "categories": ["dosage"], "warnings": ["w1"]})
    b = policy.normalise_report({"risk_level": 2, "categories": ["drug_interaction", "dosage"],
                                 "warnings": ["w1", "w2"]})
    merged = policy.merge_reports(a, b)
    assert merged["risk_level"] == 2
    assert merged["categories"] == ["dosage", "drug_interaction"] and merged["warnings"] == ["w1", "w2"]


def test_disclaimer_added_once():
    once = policy.with_disclaimer("Metformin is first line.")
    assert once.endswith(policy.DISCLAIMER)
    assert policy.with_disclaimer(once) == once


def test_mcq_answer_and_abstention():
    out = policy.mcq_answer([0.1, 0.6, 0.2, 0.1], ["a", "b", "c", "d"], threshold=0.35)
    assert (out["answer_index"], out["answer_letter"], out["answer_text"], out["abstained"]) == (1, "B", "b", False)
    assert policy.mcq_answer([0.3, 0.25, 0.25, 0.2], list("abcd"), threshold=0.35)["abstained"] is True


def test_generation_items_group_by_settings_in_first_seen_order():
    items = [policy.GenerationItem("q1"), policy.GenerationItem("q2", temperature=0.0), policy.GenerationItem("q3"),
             policy.GenerationItem("q4", stop=("\n",)), policy.GenerationItem("q5", temperature=0.0)]
    assert policy.group_by_settings(items) == [[0, 2], [1, 4], [3]]


@pytest.mark.parametrize(
    "expected, auth, x_key, ok",
    [(None, None, None, True), ("k1", None, None, False), ("k1", "Bearer k1", None, True),
     ("k1", "bearer k1", None, True), ("k1", "Bearer k2", None, False), ("k1", None, "k1", True),
     ("k1", "Basic k1", None, False)],
)
def test_api_key(expected, auth, x_key, ok):
    from medqa.serving.gate import key_matches

    assert key_matches(expected, auth, x_key) is ok


def test_chat_question_is_the_last_user_turn():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "..."}, {"role": "user", "content": "second"}]
    assert policy.chat_question(messages) == "second"
    assert policy.chat_safety_text(messages) == "be brief\nfirst\n...\nsecond"  # the screen reads every turn


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
     {"messages": [{"role": "user", "content": "x"}], "stream": True},
     {"messages": [{"role": "user", "content": "x"}], "n": 2}],
)
def test_bad_chat_requests_are_rejected(body):
    with pytest.raises(ValidationError):
        ChatCompletionRequest.model_validate(body)


def test_build_args_override_the_config(tmp_path):
    from medqa.serving.app import BuildArgs, resolve_settings

    cfg = tmp_path / "c.yaml"
    cfg.write_text("model: {name: smollm2-135m}\nserving: {max_batch_size: 4, abstain_threshold: 0.5}\n")
    model, serving = resolve_settings(BuildArgs(config=str(cfg), model="tiny-random", max_batch_size=12))
    assert (model.name, model.load_in_4bit) == ("tiny-random", False)
    assert (serving.max_batch_size, serving.abstain_threshold) == (12, 0.5)
    from medqa.config import ConfigError

    with pytest.raises(ConfigError):
        resolve_settings(BuildArgs(min_replicas=3, max_replicas=2))
    with pytest.raises(ValidationError, match="max_batch_sise"):  # a typo in a Serve config's args
        BuildArgs(max_batch_sise=4)


def test_build_args_are_the_serving_settings():
    import dataclasses

    from medqa.config import ServingConfig
    from medqa.serving.app import BuildArgs

    settings = {f.name for f in dataclasses.fields(ServingConfig)} - {"host", "port"}
    assert set(BuildArgs.model_fields) == settings | {"config", "model", "validator"}
