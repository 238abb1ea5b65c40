"""The learned crisis detector: suicide and self-harm, overdose and poisoning,
and the acute medical emergencies, in text people type.

It complements the explainable rules in `emergency.py`, which miss what they
were not written for (“everyone would be better off without me”, “dad's gone
grey and won't answer me”). A softmax head over the safety encoder's window
embeddings names the emergency type; its alarm score is 1 - P(none) on the
most alarming window. Trained by `medqa safety train-classifier`
(`training.py`) on texts written for this project (`crisis_training.py`),
shipped as arrays in `medqa/resources/safety/crisis.npz`.
"""

from __future__ import annotations

import numpy as np

from medqa.safety.learned import LearnedCheck, Reading


class CrisisDetector(LearnedCheck):
    NAME = "crisis"

    def verdict(self, reading: Reading) -> dict:
        head = self.heads.heads["types"]
        proba = head.proba(reading.embeddings)  # class 0 is "none" (crisis_training.LABELS)
        alarm = 1.0 - proba[:, 0]
        best = int(np.argmax(alarm))
        kind = head.classes[1 + int(np.argmax(proba[best, 1:]))]
        window = reading.windows[best]
        return {"fired": bool(alarm[best] >= self.threshold), "type": kind, "score": round(float(alarm[best]), 4),
                "threshold": round(self.threshold, 4), "window": [window.start, window.end],
                "windows_read": len(reading.windows), "windows_total": reading.total_windows}
