"""What the safety engine screens for each request, and how `SafetyAdapter` asks it."""

from __future__ import annotations

from medqa.serving import screening


def test_chat_question_is_the_last_user_turn():
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "..."}, {"role": "user", "content": "second"}]
    assert screening.chat_question(messages) == "second"
    assert screening.chat_safety_text(messages) == "be brief\nfirst\n...\nsecond"  # the screen reads every turn


class FakeValidator:
    """Only the output validator: the adapter falls back to it for the request check too."""

    def __init__(self):
        self.read = []

    def validate_medical_response(self, text, patient_context=None):
        self.read.append(text)
        return text, {"risk_level": 1, "warnings": ["w"]}


def test_an_mcq_is_screened_as_a_request_and_as_each_option_s_answer():
    validator = FakeValidator()
    request, answers = screening.SafetyAdapter(validator).check_mcq("q?", ["a", "b"])
    assert validator.read == ["q?\na\nb", "q?\nAnswer: a", "q?\nAnswer: b"]
    assert request["risk_level"] == 1 and [r["warnings"] for r in answers] == [["w"], ["w"]]


def test_a_checked_answer_carries_the_disclaimer():
    text, report = screening.SafetyAdapter(FakeValidator()).check_output("Rest.")
    assert text.startswith("Rest.") and "not a substitute" in text and report["checked"] is True
