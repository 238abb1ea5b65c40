"""Pure serving decisions: what to do with a request given its safety report,
how to shape reports, answers and generation batches. No Ray, no HTTP, no model.

The safety engine (`medqa.safety`) is reached only through `SafetyAdapter`, so a
change in its interface is absorbed here in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from medqa.data.record import LETTERS

EMERGENCY_NOTICE = (
    "This may be a medical emergency. Call your local emergency number (911 in the US, 112 in the EU, "
    "999 in the UK) or go to the nearest emergency department now. Do not wait for an online answer."
)
REFUSAL = "I can't help with this request."
DISCLAIMER = "This information is educational and not a substitute for professional medical advice."

ANSWER, EMERGENCY, REFUSE = "answer", "emergency", "refuse"
WITHHELD = "withheld"  # the answer failed the output check (a dangerous dose, say)
UNCHECKED = "unchecked"  # answered without refusal and output checks: the operator allows opt-outs


# ---------------------------------------------------------------- safety reports


def normalise_report(raw: Any, checked: bool = True) -> dict:
    """Any report the safety engine returns (dict or object) → the response's
    `safety_report` dict with the fields clients rely on always present."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raw = dict(getattr(raw, "__dict__", {}))
    report = {k: v for k, v in raw.items() if _json_safe(v)}
    if isinstance(raw.get("checked"), str):
        report["stage"] = raw["checked"]  # the engine's "request"/"response"; `checked` is our bool
    report["checked"] = checked
    categories = [str(c) for c in _as_list(raw.get("categories"))]
    risk = int(raw.get("risk_level") or 0)
    if "emergency" in categories:
        risk = 3  # the contract: an emergency is always critical
    report.update(
        risk_level=max(0, min(3, risk)),
        categories=categories,
        warnings=[str(w) for w in _as_list(raw.get("warnings"))],
        blocked=bool(raw.get("blocked", False)),
        actions=[str(a) for a in _as_list(raw.get("actions"))],
    )
    return report


def unchecked_report() -> dict:
    return normalise_report({"warnings": ["safety checks were turned off by the caller"]}, checked=False)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple, set)):
        return list(value)
    return [value]


def _json_safe(value: Any) -> bool:
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_json_safe(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    return False


def decide(report: dict) -> str:
    """Emergency beats everything; a blocked or harmful request is refused; else answer."""
    if report["risk_level"] >= 3 and "emergency" in report["categories"]:
        return EMERGENCY
    if report["blocked"] or "harmful_request" in report["categories"]:
        return REFUSE
    return ANSWER


def emergency_message(report: dict) -> str:
    message = report.get("message") or ""
    return str(message if "emergency" in message.lower() else EMERGENCY_NOTICE)


def no_answer_message(decision: str, report: dict) -> str:
    """What a client reads instead of an answer."""
    if decision == EMERGENCY:
        return emergency_message(report)
    if decision == WITHHELD:
        return WITHHELD_MESSAGE
    return refusal_message(report)


WITHHELD_MESSAGE = ("The answer was withheld because it failed the safety check on answers "
                    "(for example a dose above the safe limit). Please ask a pharmacist or doctor.")


def refusal_message(report: dict) -> str:
    """The refusal with its reason, so the caller knows why (the engine's own
    message when it wrote one, as it names the principle at stake)."""
    if report.get("message"):
        return str(report["message"])
    reason = report.get("reason") or report.get("block_reason")
    if not reason and report["warnings"]:
        reason = report["warnings"][0]
    if not reason:
        reason = ("it asks for help that could cause harm ("
                  + ", ".join(report["categories"] or ["harmful_request"]) + ")")
    return f"{REFUSAL} Reason: {reason}"


def merge_reports(first: dict, second: dict) -> dict:
    """Input and output checks → one report (the worst risk, every warning once)."""
    # The request check's own fields (classifier used, findings) win; the answer's findings are kept beside them.
    merged = {**second, **first}
    if "findings" in second:
        merged["response_findings"] = second["findings"]
    merged["risk_level"] = max(first["risk_level"], second["risk_level"])
    for key in ("categories", "warnings", "actions"):
        merged[key] = list(dict.fromkeys(first[key] + second[key]))
    merged["blocked"] = first["blocked"] or second["blocked"]
    merged["checked"] = first["checked"] and second["checked"]
    return merged


def with_disclaimer(text: str) -> str:
    if DISCLAIMER.lower() in text.lower() or "not a substitute" in text.lower():
        return text
    return f"{text.rstrip()}\n\n{DISCLAIMER}" if text.strip() else DISCLAIMER


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


# ---------------------------------------------------------------- answers


def mcq_answer(probabilities: Sequence[float], options: Sequence[str], threshold: float) -> dict:
    """The MCQ response fields from the scorer's probabilities."""
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    confidence = float(probabilities[best])
    return dict(
        answer_index=best,
        answer_letter=LETTERS[best],
        answer_text=options[best],
        probabilities=[float(p) for p in probabilities],
        confidence=confidence,
        abstained=confidence < threshold,
    )


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


# ---------------------------------------------------------------- generation batches


@dataclass(frozen=True)
class GenerationItem:
    question: str
    temperature: float = 0.7
    max_length: int = 100
    length_penalty: float = 1.0
    num_beams: int = 1
    concise: bool = False
    stop: tuple[str, ...] = ()
    seed: Optional[int] = None

    @classmethod
    def from_dict(cls, raw: dict) -> "GenerationItem":
        return cls(**{**raw, "stop": tuple(raw.get("stop", ()))})

    def settings(self) -> tuple:
        """Requests with equal settings share one `generate` call."""
        return (self.temperature, self.max_length, self.length_penalty, self.num_beams, self.concise, self.stop,
                self.seed)


def group_by_settings(items: Sequence[GenerationItem]) -> list[list[int]]:
    """Indices of a `@serve.batch` batch grouped by generation settings, in first-seen order.

    `model.generate` takes one temperature, length and stop list per call, so a
    batch of mixed settings runs as one call per group.
    """
    groups: dict[tuple, list[int]] = {}
    for i, item in enumerate(items):
        groups.setdefault(item.settings(), []).append(i)
    return list(groups.values())
