"""What the server does with a request, decided from its safety reports.

Owns the `safety_report` clients read (any report the safety engine returns,
normalised, and the input and output checks' reports merged into one), the
decision a report leads to (answer, emergency, refuse; withheld or unchecked
after the fact), and an MCQ's answer from the scorer's probabilities (which
option, and whether to abstain) and, when the model is calibrated, its answer set.

Pure: no Ray, no HTTP, no model. May import: data (`record.LETTERS`).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from medqa.data.record import LETTERS

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


# ---------------------------------------------------------------- answers


def mcq_answer(probabilities: Sequence[float], options: Sequence[str], threshold: float,
               prediction_set: Optional[Sequence[int]] = None, set_coverage: Optional[float] = None) -> dict:
    """The MCQ response fields from the scorer's probabilities.

    Without a calibration, `abstained` means the top probability is below `threshold`. With
    one, `prediction_set` (option indices) is the conformal answer set that holds the answer
    for `set_coverage` of questions: the response names it by letters, `abstained` means it
    holds more than one option, and `threshold` is not used.
    """
    best = max(range(len(probabilities)), key=probabilities.__getitem__)
    confidence = float(probabilities[best])
    answer = dict(
        answer_index=best,
        answer_letter=LETTERS[best],
        answer_text=options[best],
        probabilities=[float(p) for p in probabilities],
        confidence=confidence,
        abstained=confidence < threshold,
    )
    if prediction_set is not None:
        members = sorted({int(i) for i in prediction_set})
        answer.update(prediction_set=[LETTERS[i] for i in members], set_coverage=float(set_coverage),
                      abstained=len(members) > 1)
    return answer
