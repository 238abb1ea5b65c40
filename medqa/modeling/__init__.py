"""The model layer: everything done *to a model* -- presets, loading (full precision or 4-bit
NF4, on the right device and dtype), LoRA adapters, the multiple-choice scorer and free-text
generation. Evaluation, training, tuning, serving and the benchmarks import these from here.
Never Ray: it runs the same in a Ray worker, a test and a notebook.

May import: config, data (records, prompts).
"""
