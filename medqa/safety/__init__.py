"""Medical safety checks: emergencies and crises, harmful requests, drug
interactions, dosage and patient-context contraindications.

`MedicalSafetyValidator` composes them into one report; see validator.py for the
report's shape. Importing this package is light (no torch): the validator is
imported on first use and the embedders load on the first learned check.
"""

__all__ = ["MedicalSafetyValidator"]


def __getattr__(name: str):
    if name == "MedicalSafetyValidator":
        from medqa.safety.validator import MedicalSafetyValidator

        return MedicalSafetyValidator
    raise AttributeError(f"module 'medqa.safety' has no attribute {name!r}")
