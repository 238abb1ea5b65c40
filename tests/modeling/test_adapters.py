"""Several LoRA adapters on one base model: each gives its own outputs, the base stays the
base, unloading frees one without disturbing the others."""

from __future__ import annotations

import copy

import pytest
import torch

from medqa.modeling.adapters import AdapterSet, peft_name


def _adapter(model, seed: int, path) -> str:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    lora = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)  # random: it changes outputs
    get_peft_model(copy.deepcopy(model), lora).save_pretrained(str(path))
    return str(path)


@pytest.fixture(scope="module")
def setup(tiny, tmp_path_factory):
    model, tokenizer = tiny
    tmp = tmp_path_factory.mktemp("adapters")
    dirs = {"a": _adapter(model, 0, tmp / "a"), "b.v2": _adapter(model, 1, tmp / "b")}
    batch = tokenizer("Insulin lowers blood glucose", return_tensors="pt")
    return model, dirs, batch


def _logits(model, batch):
    with torch.no_grad():
        return model(**batch).logits


def _alone(model, path, batch):
    from peft import PeftModel

    return _logits(PeftModel.from_pretrained(copy.deepcopy(model), path).eval(), batch)


def test_each_adapter_answers_as_it_does_alone_and_the_base_as_the_base(setup):
    model, dirs, batch = setup
    adapters = AdapterSet(copy.deepcopy(model))
    for name, path in dirs.items():
        adapters.load(name, path)
    got = {}
    for name in ("a", "b.v2", None):
        with adapters.active(name) as active:
            got[name] = _logits(active, batch)
    assert torch.allclose(got[None], _logits(model, batch), atol=1e-5)
    assert torch.allclose(got["a"], _alone(model, dirs["a"], batch), atol=1e-5)
    assert torch.allclose(got["b.v2"], _alone(model, dirs["b.v2"], batch), atol=1e-5)
    assert not torch.allclose(got["a"], got["b.v2"]) and not torch.allclose(got["a"], got[None])

    adapters.unload("a")
    with pytest.raises(KeyError, match="not loaded"):
        with adapters.active("a"):
            pass
    with adapters.active("b.v2") as active:
        assert torch.allclose(_logits(active, batch), got["b.v2"], atol=1e-5)
    adapters.unload("b.v2")  # the last one: the base model again
    assert adapters.loaded == [] and torch.allclose(_logits(adapters.model, batch), got[None], atol=1e-5)


def test_with_a_default_adapter_none_means_the_default(setup):
    model, dirs, batch = setup
    adapters = AdapterSet(copy.deepcopy(model), default_adapter_dir=dirs["a"])
    adapters.load("b.v2", dirs["b.v2"])
    with adapters.active(None) as active:
        assert torch.allclose(_logits(active, batch), _alone(model, dirs["a"], batch), atol=1e-5)
    with adapters.active("b.v2") as active:
        assert torch.allclose(_logits(active, batch), _alone(model, dirs["b.v2"], batch), atol=1e-5)


@pytest.mark.parametrize("name", ["default", "", "has space", "x" * 65, "-lead"])
def test_adapter_names_are_checked(name):
    with pytest.raises(ValueError, match="adapter names"):
        peft_name(name)


def test_distinct_names_never_share_a_peft_name():
    names = ["a.b", "a_b", "a-b", "a_db", "a__b", "a_d.b", "a._b", "v2", "V2"]
    keys = [peft_name(n) for n in names]
    assert len(set(keys)) == len(names) and not any(c in k for k in keys for c in ".-")


def test_the_served_default_cannot_be_unloaded(tiny):
    with pytest.raises(ValueError, match="adapter names"):
        AdapterSet(tiny[0]).unload("default")
