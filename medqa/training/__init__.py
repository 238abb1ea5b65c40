"""Training: QLoRA fine-tuning on Ray Train, one worker per GPU (or CPU), with checkpoints
that a failed run resumes from.

- `driver.py` -- the driver: prepared data into Ray's object store, the `TorchTrainer`, the
  run summary (`fit(cfg)` is `medqa train` and `jobs/train.py`);
- `loop.py` -- the worker loop and its one typed `LoopConfig`, the only code using `ray.train`;
- `hf_trainer.py` -- the Hugging Face side (TrainingArguments, Trainer, callbacks), no Ray;
- `batching.py`, `deepspeed.py`, `export.py` -- packing and steps, DeepSpeed configs, merged export.

May import: config, console, data, evaluation (calibration), modeling, reporting, runtime, ray.
"""
