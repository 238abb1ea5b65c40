"""What the safety engine screens, and how it is asked.

Owns the text each request puts through the input check (every turn of a chat;
a question with its options) and each MCQ answer through the output check, the
question a chat request asks, and `SafetyAdapter`: the one place that knows the
safety engine's (`medqa.safety`) method names and report shapes, so a change in
its interface is absorbed here.

No Ray, no HTTP, no model. May import: safety (lazily: the default validator),
serving.verdicts (report normalisation), serving.messages (the disclaimer).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from medqa.serving.messages import with_disclaimer
from medqa.serving.verdicts import normalise_report

# ---------------------------------------------------------------- what is screened


def mcq_safety_text(question: str, options: Sequence[str]) -> str:
    """What the input check reads for a multiple-choice request."""
    return question + "\n" + "\n".join(options)


def mcq_answer_text(question: str, option: str) -> str:
    """What the answer check reads for a multiple-choice answer."""
    return f"{question}\nAnswer: {option}"


def chat_safety_text(messages: Sequence[dict]) -> str:
    """What the input check reads for a chat: every turn, so a crisis or a harmful
    request in an earlier turn or the system prompt is seen too."""
    return "\n".join(m["content"] for m in messages if m["content"].strip())


def chat_question(messages: Sequence[dict]) -> str:
    """The question a chat request asks: its last user message (earlier turns
    are context the small models here cannot use well; the template is single-turn)."""
    users = [m["content"] for m in messages if m["role"] == "user" and m["content"].strip()]
    if not users:
        raise ValueError("no user message")
    return users[-1]


# ---------------------------------------------------------------- the safety engine


class SafetyAdapter:
    """The one place that knows the safety engine's method names and shapes."""

    def __init__(self, validator: Any = None):
        if validator is None:
            from medqa.safety import MedicalSafetyValidator

            validator = MedicalSafetyValidator()
        self.validator = validator

    def warm_up(self) -> None:
        """Load lazily loaded parts (the learned checks' embedders) before the first request."""
        getattr(self.validator, "warm_up", lambda: None)()
        self.check_input("warm-up: what is paracetamol?")
        self.check_output("Paracetamol relieves pain.")

    def check_input(self, text: str, patient_context: Optional[dict] = None) -> dict:
        for name in ("check_request", "check_input", "assess_request"):
            method = getattr(self.validator, name, None)
            if method is not None:
                return normalise_report(method(text, patient_context=patient_context))
        # Fallback: the output validator's report also flags emergencies and harm.
        _, report = self.validator.validate_medical_response(text, patient_context=patient_context)
        return normalise_report(report)

    def check_mcq(self, question: str, options: Sequence[str],
                  patient_context: Optional[dict] = None) -> tuple[dict, list[dict]]:
        """The request check and, ahead of scoring, the answer check of every option, so a
        multiple-choice request needs one safety call, made while the model scores."""
        request = self.check_input(mcq_safety_text(question, options), patient_context)
        return request, [self.check_output(mcq_answer_text(question, o), patient_context)[1] for o in options]

    def check_output(self, response: str, patient_context: Optional[dict] = None) -> tuple[str, dict]:
        text, report = self.validator.validate_medical_response(response, patient_context=patient_context)
        return with_disclaimer(str(text)), normalise_report(report)
