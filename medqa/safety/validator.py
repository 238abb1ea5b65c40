"""One validator composing the checks into a single explainable report.

Serving builds one `MedicalSafetyValidator` per replica and calls
`check_request` before the model and `validate_medical_response` after it.
Rule checks (interactions, emergencies, dosage) cost well under a millisecond;
the harmful-request classifier (~10 ms) runs only on requests, and its embedder
is loaded lazily, once per process.

Report (a JSON-serialisable dict):
  risk_level  0 none, 1 low, 2 high, 3 critical (any emergency)
  risk        the same as a word
  categories  subset of emergency, drug_interaction, dosage, harmful_request
  warnings    human-readable reasons, one per finding
  blocked     True when the request must not be answered / the answer is withheld
  actions     what was done: emergency_notice, answer_withheld, warning_appended,
              disclaimer_appended
  message     text to show instead of (blocked) or before (emergency) the answer
  findings    the structured evidence: emergencies, interactions, dosage,
              harmful_request, suppressed (emergency words that did not fire, and why)
"""

from __future__ import annotations

import time

from medqa.safety.dosage import check_dosage
from medqa.safety.emergency import ALARM, check_emergency
from medqa.safety.interactions import InteractionChecker, InteractionTable, default_checker

RISK_WORDS = ("none", "low", "high", "critical")
INTERACTION_RISK = {"minor": 1, "moderate": 1, "major": 2}
DISCLAIMER = ("This information is for general education and is not a substitute for advice from "
              "a doctor or pharmacist who knows your situation.")
REFUSAL = ("I can't help with this request because it could cause harm ({principle}). "
           "If you have a medical concern, please talk to a qualified health professional.")
WITHHELD = "I can't give that answer safely: {reasons}. Please check with a doctor or pharmacist."
EMERGENCY = "This may be a medical emergency. {advice}"


class MedicalSafetyValidator:
    """Compose interaction, emergency, dosage and harmful-request checks.

    use_classifier: True (default) loads the trained head and fails with
    `HarmModelMissing` if it is absent; "auto" falls back to rules only (the
    report then says `classifier: unavailable`); False never uses it.
    """

    def __init__(self, use_classifier: bool | str = True, head_path=None,
                 interaction_table: InteractionTable | None = None, append_disclaimer: bool = True):
        self.checker = InteractionChecker(interaction_table) if interaction_table else default_checker()
        self.append_disclaimer = append_disclaimer
        self.classifier, self.classifier_status = _load_classifier(use_classifier, head_path)

    # ---- public API -------------------------------------------------------
    def check_request(self, text: str, patient_context: dict | None = None) -> dict:
        """Check a user's request before the model sees it."""
        start = time.perf_counter()
        findings = self._rule_findings(text, patient_context)
        findings["harmful_request"] = self._classify(text)
        report = _report(findings, "request", self.classifier_status)
        report["message"] = _request_message(report, findings)
        return _timed(report, start)

    def validate_medical_response(self, response: str, patient_context: dict | None = None) -> tuple[str, dict]:
        """Check a model answer; returns (the text to show, the report)."""
        start = time.perf_counter()
        findings = self._rule_findings(response, patient_context)
        findings["harmful_request"] = None
        report = _report(findings, "response", "not_applied")
        text = self._rewrite(response, report, findings)
        return text, _timed(report, start)

    def check(self, text: str, patient_context: dict | None = None) -> dict:
        """The CLI's one-text check: the request check (rules + classifier)."""
        return self.check_request(text, patient_context)

    def check_many(self, texts: list[str], patient_context: dict | None = None) -> list[dict]:
        """Batch request checks: one embedder pass for all texts."""
        verdicts = self.classifier.predict(texts) if self.classifier and texts else [None] * len(texts)
        reports = []
        for text, verdict in zip(texts, verdicts):
            findings = self._rule_findings(text, patient_context)
            findings["harmful_request"] = verdict if verdict and verdict["harmful"] else None
            report = _report(findings, "request", self.classifier_status)
            report["message"] = _request_message(report, findings)
            reports.append(report)
        return reports

    # ---- internals --------------------------------------------------------
    def _rule_findings(self, text: str, patient_context: dict | None) -> dict:
        matches = check_emergency(text)
        return {"emergencies": [m for m in matches if m["status"] == ALARM],
                "suppressed": [m for m in matches if m["status"] != ALARM],
                "interactions": self.checker.check(text, patient_context),
                "dosage": check_dosage(text, self.checker.lexicon, patient_context)}

    def _classify(self, text: str) -> dict | None:
        if self.classifier is None:
            return None
        verdict = self.classifier.predict([text])[0]
        return verdict if verdict["harmful"] else None

    def _rewrite(self, response: str, report: dict, findings: dict) -> str:
        if findings["dosage"]:
            report["blocked"] = True
            report["actions"].append("answer_withheld")
            reasons = "; ".join(w for d in findings["dosage"] for w in d["warnings"])
            report["message"] = WITHHELD.format(reasons=reasons)
            return report["message"]
        parts = [response]
        if findings["emergencies"]:
            report["message"] = EMERGENCY.format(advice=findings["emergencies"][0]["advice"])
            parts.insert(0, report["message"])
            report["actions"].append("emergency_notice")
        if findings["interactions"]:
            parts.append("Interaction warning: " + " ".join(_interaction_line(i) for i in findings["interactions"]))
            report["actions"].append("warning_appended")
        if self.append_disclaimer and DISCLAIMER not in response:
            parts.append(DISCLAIMER)
            report["actions"].append("disclaimer_appended")
        return "\n\n".join(parts)


def _load_classifier(use_classifier, head_path):
    if not use_classifier:
        return None, "disabled"
    from medqa.safety.harm import HarmClassifier, HarmModelMissing

    try:
        return HarmClassifier(head_path), "used"
    except HarmModelMissing:
        if use_classifier == "auto":
            return None, "unavailable"
        raise


def _interaction_line(i: dict) -> str:
    return f"{i['drug_a']} + {i['drug_b']} ({i['severity']}): {i['description']}"


def _report(findings: dict, checked: str, classifier: str) -> dict:
    """Turn findings into the risk level, categories, warnings and actions."""
    risk, categories, warnings, actions = 0, [], [], []
    if findings["emergencies"]:
        risk = 3
        categories.append("emergency")
        warnings += [f"Possible emergency ({e['label']}: '{e['matched']}'). {e['advice']}" for e in findings["emergencies"]]
        actions.append("emergency_notice")
    if findings["interactions"]:
        risk = max(risk, max(INTERACTION_RISK[i["severity"]] for i in findings["interactions"]))
        categories.append("drug_interaction")
        warnings += [f"Drug interaction: {_interaction_line(i)} [{i['source']}]" for i in findings["interactions"]]
    if findings["dosage"]:
        risk = max(risk, 2)
        categories.append("dosage")
        warnings += [f"Dosage: {w}" for d in findings["dosage"] for w in d["warnings"]]
    harm = findings.get("harmful_request")
    if harm:
        risk = max(risk, 2)
        categories.append("harmful_request")
        warnings.append(f"Harmful request (score {harm['score']:.2f}, {harm['category_name']}: {harm['principle']}).")
        actions.append("answer_withheld")
    if checked == "response":
        actions = [a for a in actions if a != "emergency_notice"]  # added by _rewrite, in order
    return {"risk_level": risk, "risk": RISK_WORDS[risk], "categories": categories, "warnings": warnings,
            "blocked": bool(harm), "actions": actions, "message": None, "checked": checked,
            "classifier": classifier, "findings": findings}


def _request_message(report: dict, findings: dict) -> str | None:
    if report["blocked"]:
        return REFUSAL.format(principle=findings["harmful_request"]["principle"])
    if findings["emergencies"]:
        return EMERGENCY.format(advice=findings["emergencies"][0]["advice"])
    return None


def _timed(report: dict, start: float) -> dict:
    report["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return report
