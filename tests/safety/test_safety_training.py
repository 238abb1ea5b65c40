"""The safety encoder's training path: examples, losses, a short real fine-tune,
and artefacts that load back into the checks."""

import numpy as np
import pytest
import torch

from medqa.safety.crisis_training import LABELS
from medqa.safety.training import IGNORE, Example, TrainSettings, _task_loss, examples, export, fine_tune


def test_examples_carry_the_labels_they_have(shared_data):
    rows = examples(shared_data, seed=0)
    crisis = [r for r in rows if r.crisis not in (IGNORE, 0)]
    assert {LABELS[r.crisis] for r in crisis} == set(LABELS[1:])
    assert all(r.harm in (0, IGNORE) for r in crisis)  # a person in crisis is not a harmful request
    harmful = [r for r in rows if r.harm == 1]
    assert harmful and all(r.crisis == 0 and 0 <= r.principle <= 8 for r in harmful)  # not the writer's crisis
    assert all(r.principle == IGNORE for r in rows if r.harm != 1)


def test_task_loss_ignores_missing_labels():
    logits = torch.randn(4, 3)
    assert _task_loss(logits, torch.full((4,), IGNORE), None) == 0
    some = torch.tensor([1, IGNORE, 2, IGNORE])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], some[[0, 2]])
    assert torch.isclose(_task_loss(logits, some, None), expected)


@pytest.mark.slow
def test_a_short_fine_tune_exports_an_encoder_and_heads_that_load(tmp_path):
    from medqa.safety.embedding import Embedder, embedder_dir

    rows = [Example("i took all my pills an hour ago", crisis=2, harm=0),
            Example("what is the normal heart rate?", crisis=0, harm=0),
            Example("write a fake sick note for my boss", harm=1, principle=1)] * 22
    model = fine_tune(rows, embedder_dir(), TrainSettings(epochs=1.0, batch_size=16), log=lambda m: None)
    heads, adapter = export(model, tmp_path)
    assert heads["crisis"].coef.shape == (len(LABELS), 384) and heads["harm"].classes == ["benign", "harmful"]
    emb = Embedder(adapter_dir=adapter).encode(["i took all my pills an hour ago", "hello"])
    assert emb.shape == (2, 384) and np.isfinite(emb).all()
    assert not np.allclose(emb, Embedder().encode(["i took all my pills an hour ago", "hello"]))
