"""Shared fixtures: one local Ray per test session, the tiny model, the shared data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medqa.data.record import MCQRecord

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
MEDMCQA_DEV = SHARED_DATA / "medmcqa_dev_public.jsonl"
MEDSAFETYBENCH = SHARED_DATA / "medsafetybench_train.jsonl"

# Nothing in the tests may reach a hub; make any accidental attempt fail fast.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert MEDMCQA_DEV.exists(), f"../shared/data is missing beside the repo ({SHARED_DATA})"
    return SHARED_DATA


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole session: starting Ray on 2 cores takes seconds.

    num_cpus is logical: 4 lets a 2-worker trainer plus its coordinator fit.
    """
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def tiny_model_path() -> str:
    from medqa.modeling.loading import resolve_checkpoint

    return resolve_checkpoint("tiny-random")


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    from medqa.modeling.loading import resolve_checkpoint

    return resolve_checkpoint("smollm2-135m")


@pytest.fixture(scope="session")
def tiny(tiny_model_path):
    """(model, tokenizer) of the tiny random Llama in full precision, eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(tiny_model_path)
    model.eval()
    return model, tokenizer


def make_records(n: int = 6) -> list[MCQRecord]:
    """Records of different lengths (so batches need padding) and options of different lengths."""
    subjects = ["Pharmacology", "Anatomy", "Surgery"]
    return [
        MCQRecord(
            question=f"Question {i}: which agent is used here" + " in a longer clinical vignette" * (i % 3) + "?",
            options=["Amlodipine", "Metformin hydrochloride", "Insulin glargine injection", "Aspirin"][i % 4:] +
                    ["Amlodipine", "Metformin hydrochloride", "Insulin glargine injection", "Aspirin"][: i % 4],
            answer_index=i % 4,
            id=f"r{i}",
            subject=subjects[i % 3],
            explanation=f"Explanation number {i} about the mechanism of the drug.",
        )
        for i in range(n)
    ]


@pytest.fixture
def records() -> list[MCQRecord]:
    return make_records()
