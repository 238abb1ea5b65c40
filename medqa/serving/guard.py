"""The safety deployment: medqa.safety's checks on requests and answers, in replicas of their own."""

from __future__ import annotations

import importlib
from typing import Optional

from ray import serve

from medqa.serving.screening import SafetyAdapter

DEFAULT_VALIDATOR = "medqa.safety:MedicalSafetyValidator"


@serve.deployment(name="SafetyGuard")
class SafetyGuard:
    def __init__(self, validator: str = DEFAULT_VALIDATOR):
        module, _, name = validator.partition(":")
        self.adapter = SafetyAdapter(getattr(importlib.import_module(module), name)())
        self.adapter.warm_up()  # the replica reports ready only once the first request would be fast

    def check_input(self, text: str, patient_context: Optional[dict] = None) -> dict:
        return self.adapter.check_input(text, patient_context)

    def check_mcq(self, question: str, options: list[str], patient_context: Optional[dict] = None) -> tuple[dict, list]:
        return self.adapter.check_mcq(question, options, patient_context)

    def check_output(self, text: str, patient_context: Optional[dict] = None) -> tuple[str, dict]:
        return self.adapter.check_output(text, patient_context)

    def ping(self) -> bool:
        return True
