"""The texts people read in place of an answer or beside it: the emergency notice,
the refusal with its reason, the notice that an answer was withheld, and the
disclaimer every checked answer carries.

Pure: no Ray, no HTTP, no model. May import: serving.verdicts (the decision names).
"""

from __future__ import annotations

from medqa.serving.verdicts import EMERGENCY, WITHHELD

EMERGENCY_NOTICE = (
    "This may be a medical emergency. Call your local emergency number (911 in the US, 112 in the EU, "
    "999 in the UK) or go to the nearest emergency department now. Do not wait for an online answer."
)
REFUSAL = "I can't help with this request."
DISCLAIMER = "This information is educational and not a substitute for professional medical advice."
WITHHELD_MESSAGE = ("The answer was withheld because it failed the safety check on answers "
                    "(for example a dose above the safe limit). Please ask a pharmacist or doctor.")


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


def with_disclaimer(text: str) -> str:
    if DISCLAIMER.lower() in text.lower() or "not a substitute" in text.lower():
        return text
    return f"{text.rstrip()}\n\n{DISCLAIMER}" if text.strip() else DISCLAIMER
