import subprocess
import sys

import pytest
import torch

from medqa.config import LoraConfig, ModelConfig
from medqa.modeling.loading import COMPLETE_MARKER, load_model, load_tokenizer, resolve_checkpoint
from medqa.modeling.lora import attach_lora, lora_targets
from medqa.modeling.presets import PRESETS


def test_hub_ids_and_paths_pass_through(tmp_path):
    assert resolve_checkpoint("microsoft/phi-2") == "microsoft/phi-2"
    assert resolve_checkpoint("phi-2") == "microsoft/phi-2"
    assert resolve_checkpoint(str(tmp_path)) == str(tmp_path)


@pytest.mark.parametrize(
    "model, configured, expected",
    [
        ("phi-2", None, ["q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"]),
        ("smollm2-135m", None, list(PRESETS["smollm2-135m"].lora_targets)),
        ("smollm2-135m", ["q_proj"], ["q_proj"]),
        ("someone/other-model", None, "all-linear"),
    ],
)
def test_lora_targets_come_from_config_then_preset(model, configured, expected):
    assert lora_targets(model, LoraConfig(target_modules=configured)) == expected


def test_tiny_model_loads_in_4bit_and_trains_lora(tiny_model_path):
    cfg = ModelConfig(name=tiny_model_path, load_in_4bit=True)
    model = load_model(cfg)
    assert any("Linear4bit" in type(m).__name__ for m in model.modules())
    peft_model = attach_lora(model, ModelConfig(name="tiny-random"), LoraConfig(r=4, alpha=8))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    tokenizer = load_tokenizer(tiny_model_path)
    batch = tokenizer(["Question: aspirin?\nAnswer: A"], return_tensors="pt")
    loss = peft_model(**batch, labels=batch["input_ids"]).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert all(peft_model.get_parameter(n).grad is not None for n in trainable)


def test_prepare_model_twice_at_once_leaves_one_valid_checkpoint(tmp_path):
    """Two processes race to build a preset checkpoint; both print the same directory, which
    holds one complete checkpoint. (The tiny preset takes the lock and the rename exactly as the
    embedded GGUF does, in a fraction of the time; the session's cache converts the GGUF.)"""
    cmd = [sys.executable, "-m", "medqa", "prepare-model", "--preset", "tiny-random", "--cache-dir", str(tmp_path)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300)[0].strip().splitlines()[-1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outputs[0] == outputs[1]
    models = tmp_path / "models"
    assert sorted(p.name for p in models.iterdir() if p.is_dir()) == ["tiny-random"]  # no temp dirs left
    assert (models / "tiny-random" / COMPLETE_MARKER).exists()
    assert torch.isfinite(load_model(outputs[0])(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


@pytest.mark.slow
def test_the_converted_gguf_loads_in_4bit(smollm2_path):
    model = load_model(ModelConfig(name=smollm2_path, load_in_4bit=True))
    footprint_mb = model.get_memory_footprint() / 1e6
    assert footprint_mb < 250  # about 166 MB in 4-bit vs about 540 MB in fp32
    tokenizer = load_tokenizer(smollm2_path)
    ids = tokenizer("The capital of France is", return_tensors="pt")
    logits = model(**ids).logits
    assert torch.isfinite(logits).all()
