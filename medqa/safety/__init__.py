"""Medical safety checks: emergencies and crises, harmful requests, drug
interactions, dosage and patient-context contraindications.

Owns the checks and the data they ship with (`medqa/resources/safety/`), the
classifier heads and the training that produces them, and the `medqa safety`
CLI. `MedicalSafetyValidator` composes the checks into one report; see
validator.py for the report's shape. The public contract is
`MedicalSafetyValidator().validate_medical_response(response, patient_context=None)`;
serving also uses `medqa.safety.context.PatientContext` as its request schema.

Importing this package is light (no torch): the validator is imported on first
use and the embedders load on the first learned check. Never Ray.

Third-party: numpy at import; torch, transformers, peft, model2vec, datasets, sklearn and
filelock only inside the functions that embed or train. Data files come from
`medqa/resources/safety/` through importlib.resources.

May import: console (the CLI's JSON output), modeling (`loading.cache_root`, the one cache).
"""

__all__ = ["MedicalSafetyValidator"]


def __getattr__(name: str):
    if name == "MedicalSafetyValidator":
        from medqa.safety.validator import MedicalSafetyValidator

        return MedicalSafetyValidator
    raise AttributeError(f"module 'medqa.safety' has no attribute {name!r}")
