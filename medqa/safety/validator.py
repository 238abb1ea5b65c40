"""One validator composing the checks into a single explainable report.

Serving builds one `MedicalSafetyValidator` per replica and calls
`check_request` before the model and `validate_medical_response` after it.
Every check reads the same normalised text (`normalize.py`). Requests are read
by the rules (interactions, emergencies, dosage, patient context; well under a
millisecond) and by the learned checks (crisis detector and harmful-request
classifier over one MiniLM reading of the text's windows); answers by the rules.

Decision policy, crisis first: any emergency signal -- a rule or the learned
detector -- makes the report critical with the emergency or crisis message.
It is never a refusal, even when the harm classifier also fires: a person
asking for the means of self-harm gets the crisis message and no answer
(serving answers an emergency with its message alone).

Report (a JSON-serialisable dict):
  risk_level  0 none, 1 low, 2 high, 3 critical (any emergency)
  risk        the same as a word
  categories  subset of emergency, drug_interaction, dosage, contraindication, harmful_request
  warnings    human-readable reasons, one per finding
  blocked     True when the request is refused / the answer is withheld (never for an emergency)
  actions     what was done: emergency_notice, crisis_response, answer_withheld,
              warning_appended, disclaimer_appended
  message     text to show instead of (blocked, emergency) or before (answer) the answer
  signals     which emergency signals fired and why (rule pattern or detector score)
  findings    the structured evidence: emergencies, interactions, dosage, contraindications,
              harmful_request, crisis_detector, suppressed (emergency words that did not fire, and why)
"""

from __future__ import annotations

import re
import time

from medqa.safety.context import as_context, check_context
from medqa.safety.dosage import check_dosage
from medqa.safety.emergency import ALARM, check_emergency, emergency_types, exam_framed
from medqa.safety.harm import with_intent_rule
from medqa.safety.interactions import (
    InteractionChecker,
    InteractionTable,
    default_checker,
)
from medqa.safety.normalize import normalize_text

RISK_WORDS = ("none", "low", "high", "critical")
INTERACTION_RISK = {"minor": 1, "moderate": 1, "major": 2}
CONTEXT_RISK = {"moderate": 1, "major": 2}
SELF_HARM = "suicide_self_harm"
SELF_HARM_TYPES = (SELF_HARM, "overdose_poisoning")
# A harmful request that talks about harming oneself is a request for the means
# of self-harm: it gets the crisis message, never a refusal.
SELF_HARM_WORDS = re.compile(r"\b(?:myself|my (?:own )?life|kill me|end it|die|dying|suicid\w*|overdos\w*|lethal|fatal|"
                             r"painless(?:ly)?|not wake up|cut(?:ting)? me|starve myself|hurt me)\b", re.I)
LEANING = 0.5  # of the detector's alarm threshold: a self-harm score this high leans towards self-harm
DISCLAIMER = ("This information is for general education and is not a substitute for advice from "
              "a doctor or pharmacist who knows your situation.")
REFUSAL = ("I can't help with this request because it could cause harm ({principle}). "
           "If you have a medical concern, please talk to a qualified health professional.")
# Every refusal also says where help is: if a crisis was missed and refused, the
# person still reads the crisis line and the emergency number.
REFUSAL_HELP = ("If you are thinking about harming yourself, please call or text a crisis line now "
                "(988 in the US, Samaritans 116 123 in the UK and Ireland, or your local line); if you "
                "or someone else is in danger, call your local emergency number (911/999/112).")
WITHHELD = "I can't give that answer safely: {reasons}. Please check with a doctor or pharmacist."
EMERGENCY = "This may be a medical emergency. {advice}"


class MedicalSafetyValidator:
    """Compose interaction, emergency, dosage, patient-context and learned checks.

    use_classifier: True (default) loads the trained heads (crisis detector and
    harm classifier) and fails with `SafetyModelMissing` if one is absent;
    "auto" falls back to rules only (the report then says `classifier:
    unavailable`); False never uses them.
    """

    def __init__(self, use_classifier: bool | str = True, head_path=None, crisis_head_path=None,
                 interaction_table: InteractionTable | None = None, append_disclaimer: bool = True):
        self.checker = InteractionChecker(interaction_table) if interaction_table else default_checker()
        self.append_disclaimer = append_disclaimer
        self.learned, self.classifier_status = _load_learned(use_classifier, head_path, crisis_head_path)

    # ---- public API -------------------------------------------------------
    def check_request(self, text: str, patient_context=None) -> dict:
        """Check a user's request before the model sees it."""
        return self.check_many([text], patient_context)[0]

    def check_many(self, texts: list[str], patient_context=None) -> list[dict]:
        """Request checks for many texts: one embedder pass for all of them."""
        start = time.perf_counter()
        ctx = as_context(patient_context)
        clean = [normalize_text(str(t)) for t in texts]
        learned = self.learned.assess(clean) if self.learned else [(None, None)] * len(clean)
        reports = []
        for text, (crisis, harm) in zip(clean, learned, strict=True):
            findings = self._rule_findings(text, ctx)
            findings["crisis_detector"], findings["harmful_request"] = crisis, with_intent_rule(harm, text)
            reports.append(_timed(_request_report(crisis_first(findings, text), self.classifier_status), start))
        return reports

    def validate_medical_response(self, response: str, patient_context=None) -> tuple[str, dict]:
        """Check a model answer; returns (the text to show, the report)."""
        start = time.perf_counter()
        findings = self._rule_findings(normalize_text(str(response)), as_context(patient_context))
        findings["crisis_detector"], findings["harmful_request"] = None, None
        report = _report(findings, "response", "not_applied")
        text = self._rewrite(str(response), report, findings)
        return text, _timed(report, start)

    def check(self, text: str, patient_context=None) -> dict:
        """The CLI's one-text check: the request check (rules + learned checks)."""
        return self.check_request(text, patient_context)

    def warm_up(self) -> None:
        """Load both embedders now (the static one is distilled on first use, about
        30 s once per machine), not on a user's first long post."""
        if self.learned:
            self.learned.reader.load()

    # ---- internals --------------------------------------------------------
    def _rule_findings(self, text: str, ctx) -> dict:
        matches = check_emergency(text)
        return {"emergencies": [m for m in matches if m["status"] == ALARM],
                "suppressed": [m for m in matches if m["status"] != ALARM],
                "interactions": self.checker.check(text, ctx),
                "dosage": check_dosage(text, self.checker.lexicon, ctx),
                "contraindications": check_context(text, self.checker.lexicon, ctx)}

    def _rewrite(self, response: str, report: dict, findings: dict) -> str:
        if findings["dosage"]:
            report["blocked"] = True
            report["actions"].append("answer_withheld")
            reasons = "; ".join(w for d in findings["dosage"] for w in d["warnings"])
            report["message"] = WITHHELD.format(reasons=reasons)
            return report["message"]
        parts = [response]
        if report["signals"]:
            report["message"] = emergency_message(report["signals"])
            parts.insert(0, report["message"])
            report["actions"].append("emergency_notice")
        notes = [_interaction_line(i) for i in findings["interactions"]] + \
                [c["reason"] for c in findings["contraindications"]]
        if notes:
            parts.append("Warning: " + " ".join(notes))
            report["actions"].append("warning_appended")
        if self.append_disclaimer and DISCLAIMER not in response:
            parts.append(DISCLAIMER)
            report["actions"].append("disclaimer_appended")
        return "\n\n".join(parts)


class LearnedChecks:
    """The crisis detector and the harm classifier over one reading of each text."""

    def __init__(self, crisis, harm):
        from medqa.safety.learned import WindowReader

        self.crisis, self.harm = crisis, harm
        self.reader = WindowReader([crisis.heads.heads["screen"], harm.heads.heads["screen"]])

    def assess(self, texts: list[str]) -> list[tuple[dict, dict]]:
        return [(self.crisis.verdict(r), self.harm.verdict(r)) for r in self.reader.read_many(texts)]


def _load_learned(use_classifier, head_path, crisis_head_path):
    if not use_classifier:
        return None, "disabled"
    from medqa.safety.crisis import CrisisDetector
    from medqa.safety.embedding import SafetyModelMissing
    from medqa.safety.harm import HarmClassifier

    try:
        return LearnedChecks(CrisisDetector(crisis_head_path), HarmClassifier(head_path)), "used"
    except SafetyModelMissing:
        if use_classifier == "auto":
            return None, "unavailable"
        raise


# ---- the report: pure functions of the findings ---------------------------


def crisis_first(findings: dict, text: str) -> dict:
    """The decision policy over a request's findings (pure; returns new findings).

    * The detector is set aside on exam and textbook questions, as the rules are.
    * Self-harm intent gets the crisis message: an overdose spoken of as a way
      to die, or a harmful request the detector reads as leaning towards
      self-harm (a means request, even one with no word about oneself).
    * Otherwise, when the harm classifier flags the request and no signal says
      someone is harming themselves, a rule match or a detector alarm of another
      type is a word in a harmful request ("... is poisoning children"), not an
      emergency: the request is refused (the refusal names the emergency number
      too). Not when only the intent rule flags it: then the emergency stands.
    """
    findings = dict(findings)
    crisis, harm = findings.get("crisis_detector"), findings.get("harmful_request")
    if crisis and crisis["fired"] and exam_framed(text):
        findings["crisis_detector"] = crisis = {**crisis, "fired": False, "suppressed": "framing"}
    harmful = bool(harm and harm["harmful"])
    overdose = any(e["type"] == "overdose_poisoning" for e in findings["emergencies"]) or \
        bool(crisis and crisis["fired"] and crisis["type"] == "overdose_poisoning")
    words = bool(SELF_HARM_WORDS.search(text))
    leans = {kind for kind in SELF_HARM_TYPES
             if any(m["type"] == kind for m in findings["emergencies"] + findings["suppressed"])
             or (crisis and crisis["type"] == kind and crisis["score"] >= LEANING * crisis["threshold"])}
    # A harmful request leaning towards suicide is more likely a means request from a person in
    # crisis than a plan against someone else (and the crisis message gives neither a method);
    # one leaning towards poisoning needs words about oneself ("... is poisoning children").
    if (overdose and words) or (harmful and (SELF_HARM in leans or (leans and words))):
        findings["self_harm_intent"] = True
    elif harmful and "rule" not in harm and not (crisis and crisis["fired"] and crisis["type"] in SELF_HARM_TYPES) \
            and all(e["type"] != SELF_HARM for e in findings["emergencies"]):
        findings["suppressed"] = findings["suppressed"] + [{**e, "status": "harmful_request"}
                                                           for e in findings["emergencies"]]
        findings["emergencies"] = []
        if crisis and crisis["fired"]:
            findings["crisis_detector"] = {**crisis, "fired": False, "suppressed": "harmful_request"}
    return findings


def emergency_signals(findings: dict) -> list[dict]:
    """Every emergency signal that fired, rules first, each saying why."""
    signals = [_signal("rule", e["type"], f"matched '{e['matched']}'") for e in findings["emergencies"]]
    crisis = findings.get("crisis_detector")
    if crisis and crisis["fired"]:
        signals.append(_signal("detector", crisis["type"], f"crisis detector score {crisis['score']:.2f} >= "
                               f"{crisis['threshold']:.2f} on characters {crisis['window'][0]}-{crisis['window'][1]}"))
    if findings.get("self_harm_intent") and not any(s["type"] == SELF_HARM for s in signals):
        signals.append(_signal("policy", SELF_HARM, "self-harm intent (an overdose or a harmful request about "
                               "harming oneself): the crisis message, never a refusal"))
    return signals


def _signal(source: str, kind: str, why: str) -> dict:
    return {"source": source, "type": kind, "label": emergency_types()[kind]["label"], "why": why}


def emergency_message(signals: list[dict]) -> str:
    """Crisis first: a self-harm signal gets the crisis message, else the first emergency's advice."""
    kinds = [s["type"] for s in signals]
    kind = SELF_HARM if SELF_HARM in kinds else kinds[0]
    return EMERGENCY.format(advice=emergency_types()[kind]["advice"]) if kind != SELF_HARM \
        else emergency_types()[SELF_HARM]["advice"]


def _report(findings: dict, checked: str, classifier: str) -> dict:
    """Turn findings into the risk level, categories, warnings and actions."""
    risk, categories, warnings = 0, [], []
    signals = emergency_signals(findings)
    if signals:
        risk = 3
        categories.append("emergency")
        warnings += [f"Possible emergency ({s['label']}: {s['why']})." for s in signals]
    if findings["interactions"]:
        risk = max(risk, max(INTERACTION_RISK[i["severity"]] for i in findings["interactions"]))
        categories.append("drug_interaction")
        warnings += [f"Drug interaction: {_interaction_line(i)} [{i['source']}]" for i in findings["interactions"]]
    if findings["dosage"]:
        risk = max(risk, 2)
        categories.append("dosage")
        warnings += [f"Dosage: {w}" for d in findings["dosage"] for w in d["warnings"]]
    if findings["contraindications"]:
        risk = max(risk, max(CONTEXT_RISK.get(c["severity"], 1) for c in findings["contraindications"]))
        categories.append("contraindication")
        warnings += [f"Patient context ({c['kind']}): {c['reason']}" for c in findings["contraindications"]]
    return {"risk_level": risk, "risk": RISK_WORDS[risk], "categories": categories, "warnings": warnings,
            "blocked": False, "actions": [], "message": None, "signals": signals, "checked": checked,
            "classifier": classifier, "findings": findings}


def _request_report(findings: dict, classifier: str) -> dict:
    report = _report(findings, "request", classifier)
    harm = findings["harmful_request"]
    if report["signals"]:  # crisis first: help, never a refusal
        self_harm = any(s["type"] == SELF_HARM for s in report["signals"])
        report["actions"].append("crisis_response" if self_harm else "emergency_notice")
        report["message"] = emergency_message(report["signals"])
    elif harm and harm["harmful"]:
        report["risk_level"] = max(report["risk_level"], 2)
        report["risk"] = RISK_WORDS[report["risk_level"]]
        report["categories"].append("harmful_request")
        report["warnings"].append(f"Harmful request (score {harm['score']:.2f}, {harm['category_name']}: "
                                  f"{harm['principle']}).")
        report["blocked"] = True
        report["actions"].append("answer_withheld")
        report["message"] = REFUSAL.format(principle=harm["principle"]) + " " + REFUSAL_HELP
    return report


def _interaction_line(i: dict) -> str:
    return f"{i['drug_a']} + {i['drug_b']} ({i['severity']}): {i['description']}"


def _timed(report: dict, start: float) -> dict:
    report["elapsed_ms"] = round((time.perf_counter() - start) * 1000, 3)
    return report
