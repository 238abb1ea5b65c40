"""Medical safety checks: drug interactions, emergencies, dosage, harmful requests.

`MedicalSafetyValidator` composes them into one report; see validator.py for the
report's shape. Importing this package is light (no torch); the classifier's
embedder loads on first use.
"""

from medqa.safety.validator import MedicalSafetyValidator

__all__ = ["MedicalSafetyValidator"]
