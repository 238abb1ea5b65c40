"""Model layer: presets, loading (full precision or 4-bit NF4), LoRA adapters."""
