"""Shared fixtures for the safety tests: one validator per session (the embedder
loads once), and the location of ../shared/data."""

from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def rules_validator():
    from medqa.safety import MedicalSafetyValidator

    return MedicalSafetyValidator(use_classifier=False)


@pytest.fixture(scope="session")
def full_validator():
    from medqa.safety import MedicalSafetyValidator

    return MedicalSafetyValidator(use_classifier=True)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "medsafetybench_train.jsonl").exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return SHARED
