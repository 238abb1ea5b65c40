"""Harmful-request classifier: heads over the safety encoder's window embeddings.

`medqa safety train-classifier` (`training.py`) trains `harm` (harmful vs
benign; threshold picked on a validation split) and `principle` (which AMA
principle a flagged request is against) with the encoder, and `screen`
(harmful vs benign on the static embeddings, used only to choose the windows
of a long text that the encoder reads). Only the arrays ship
(`medqa/resources/safety/harm.npz`), never the training rows; the data is in
`harm_training.py`.
"""

from __future__ import annotations

import re

import numpy as np

from medqa.safety.embedding import SafetyModelMissing
from medqa.safety.learned import LearnedCheck, Reading

HarmModelMissing = SafetyModelMissing  # the name callers have caught since the first release

# MedSafetyBench categories are the nine AMA Principles of Medical Ethics.
HARM_CATEGORIES = {
    1: ("competence_compassion_dignity", "competent, compassionate care with respect for human dignity"),
    2: ("professionalism_honesty", "professional standards and honesty (fraud, deception)"),
    3: ("respect_for_law", "respect for the law (illegal prescribing, drugs, procedures)"),
    4: ("patient_privacy_rights", "patient rights, confidentiality and privacy"),
    5: ("scientific_integrity", "scientific integrity and honest health information"),
    6: ("physician_freedom_safe_environment", "physicians' freedom of choice and a safe working environment"),
    7: ("public_health", "community and public health"),
    8: ("patient_welfare", "responsibility to the patient is paramount (harm to patients or self)"),
    9: ("access_to_care", "access to medical care for all people"),
}


# Explainable backstop: an intent to harm another person, in the words people use
# ("how can i poison my husband", "what can i put in her drink to make her sleep").
# The classifier learned its harm mostly from MedSafetyBench's formal requests.
_INTENT = (r"\b(?:how (?:can|do|would|could|should|might|to) (?:i|we|one|you)?|how to"
           r"|i (?:want|need|plan|am going|'m going) to|i wanna|i'm gonna|help me|ways? to|best way to|easiest way to"
           r"|what (?:can|should|could) i (?:use|give|put|add|mix|slip))\b")
_HARM = (r"\b(?:poison|drug|sedate|spike|overdose|kill|murder|hurt|harm|suffocate|smother|paralys|knock out)"
         r"(?:e|s|es|ed|ing)?\s+")
_TARGET = (r"(?:(?:my|his|her|their|our|a|the|this|that|an?) (?:\w+ )?(?:husband|wife|partner|boyfriend|girlfriend|ex|"
           r"mother|father|mum|mom|dad|son|daughter|child|kid|baby|toddler|grandma|grandmother|grandpa|grandfather|"
           r"neighbou?r|boss|co-?worker|colleague|room-?mate|flatmate|patient|teacher|friend|sister|brother|stepson|"
           r"stepdaughter|dog|cat|person|man|woman|girl|boy)s?|someone|somebody|him|her|them|people)\b")
_MAKE_ILL = r"\bmake (?:him|her|them|someone|somebody|(?:my|his|her) \w+) (?:\w+ )?(?:sick|ill|pass out|unconscious)\b"
# A few words may come between the intent and the act ("put in my wife's drink to"),
# but not "stop", "prevent" or "protect": those are someone keeping another safe.
_GAP = r"\W+(?:(?!stop|prevent|avoid|keep|protect|help)\w+\W+){0,6}?"
INTENT_TO_HARM = re.compile(_INTENT + _GAP + r"(?:" + _HARM + _TARGET + r"|" + _MAKE_ILL + r")")
CONCEALMENT = re.compile(r"\b(?:without (?:getting caught|being caught"
                         r"|(?:them|him|her|anyone) (?:knowing|noticing|finding out))|"
                         r"undetectable|untraceable|(?:won't|wouldn't|doesn't|not) show up (?:in|on) (?:a |an )?"
                         r"(?:autopsy|post[- ]mortem|tox(?:icology)? screen)|"
                         r"look(?:s)? like (?:natural causes|an accident))\b")


def intent_to_harm(text: str) -> str | None:
    """The words of an intent to harm someone else, if the text states one."""
    low = text.lower()
    m = INTENT_TO_HARM.search(low)
    if m is None and CONCEALMENT.search(low) and re.search(_HARM, low + " "):
        m = CONCEALMENT.search(low)
    return text[m.start():m.end()] if m else None


def with_intent_rule(verdict: dict | None, text: str) -> dict | None:
    """The classifier's verdict, made harmful when the intent rule matches (category 8)."""
    matched = intent_to_harm(text)
    if matched is None or (verdict and verdict["harmful"]):
        return verdict
    name, why = HARM_CATEGORIES[8]
    base = verdict or {"score": 0.0, "threshold": 0.0, "window": [0, len(text)], "windows_read": 0, "windows_total": 0}
    return {**base, "harmful": True, "category": 8, "category_name": name, "principle": why,
            "rule": f"matched '{matched}'"}


class HarmClassifier(LearnedCheck):
    """Scores requests read in windows; the verdict is the most harmful window's."""

    NAME = "harm"

    def verdict(self, reading: Reading) -> dict:
        scores = self.heads.heads["harm"].positive(reading.embeddings)
        best = int(np.argmax(scores))
        principle = self.heads.heads["principle"]
        category = int(principle.classes[int(np.argmax(principle.proba(reading.embeddings[best:best + 1])[0]))])
        name, why = HARM_CATEGORIES[category]
        window = reading.windows[best]
        return {"harmful": bool(scores[best] >= self.threshold), "score": round(float(scores[best]), 4),
                "threshold": round(self.threshold, 4), "category": category, "category_name": name,
                "principle": why, "window": [window.start, window.end],
                "windows_read": len(reading.windows), "windows_total": reading.total_windows}
