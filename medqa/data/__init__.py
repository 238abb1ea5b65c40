"""Data: one normalised multiple-choice record, readers, validation and the preprocessing pipeline.

Public entry points (kept stable; training, evaluation, serving and the demo call them):

- `medqa.data.record.MCQRecord` — the record every reader produces.
- `medqa.data.sources.read_records(src, limits=None, cop_base=None, strict=False)`
  → `(records, rejections)`; SRC is `sample`, a .jsonl/.json/.csv/.parquet file,
  a `datasets.save_to_disk` folder or a hub id (`openlifescienceai/medmcqa[:split]`).
- `medqa.data.schema` — `validate_row(row)` → `MCQRecord | Rejection(reason, ...)`, `REASONS`.
- `medqa.data.prompts` — the one prompt template (`mcq_prompt`, `mcq_target`, ...).
- `medqa.data.tokenize.build_example(tokenizer, record, loss_on, max_length)` —
  `input_ids`/`labels` with -100 on the prompt, EOS appended.
- `medqa.data.augment.augment_records(records, factor, seed)` — answer-preserving,
  position-balancing option shuffling.
- `medqa.data.preprocess.preprocess_on_ray(cfg)` (Ray Data) / `preprocess_in_process(cfg)` (one process)
  → summary dict; writes `<output_dir>/{train,validation}/*.parquet`, `rejects.jsonl`,
  `summary.json`. `medqa.data.steps.row_to_record(parquet_row)` rebuilds a record.

May import: config, console, modeling (`preprocess.py` loads the tokenizer), runtime, ray (`preprocess.py` only).
"""
