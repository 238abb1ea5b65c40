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

from pathlib import Path

import numpy as np

from medqa.safety.embedding import SafetyModelMissing
from medqa.safety.learned import HeadSet, Reading, WindowReader, packaged_head

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


def default_head_path() -> Path:
    return packaged_head("harm")


class HarmClassifier:
    """Scores requests read in windows; the verdict is the most harmful window's."""

    def __init__(self, heads: HeadSet | str | Path | None = None, embedder=None, static=None):
        self.heads = heads if isinstance(heads, HeadSet) else HeadSet.load(heads or default_head_path())
        self.reader = WindowReader([self.heads.heads["screen"]], embedder, static)

    @property
    def threshold(self) -> float:
        return self.heads.threshold

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

    def predict(self, texts: list[str]) -> list[dict]:
        return [self.verdict(r) for r in self.reader.read_many(texts)]
