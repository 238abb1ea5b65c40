"""The model layer: everything done *to a model* -- presets, loading (full precision or 4-bit
NF4, on the right device and dtype), LoRA adapters, the multiple-choice scorer and free-text
generation. Evaluation, training, tuning, serving and the benchmarks import these from here.
It may import `medqa.config` and `medqa.data` (records, prompts), never Ray."""
