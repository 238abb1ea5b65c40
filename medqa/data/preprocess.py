"""`medqa preprocess`: the Ray Data pipeline, and the same steps in one process.

    summary = preprocess_on_ray(load_config(None, ["data.source=sample"]))

read → validate → normalise → exact + near-duplicate removal → contamination
→ augmentation → prompt → tokenise with label masks → stratified split →
parquet. The steps live in `medqa.data.steps`; this file only moves batches:
`preprocess_on_ray` through Ray Data `map_batches` (parallel row steps, one global
plan on the driver), `preprocess_in_process` in a loop (the benchmark baseline). Both
write the same layout:

    <output_dir>/train/*.parquet        (augmented)
    <output_dir>/validation/*.parquet   (never augmented)
    <output_dir>/rejects.jsonl          (one line per rejected row, with its reason)
    <output_dir>/summary.json

Parquet columns: input_ids, labels (-100 on the prompt), length, the record
fields (id, question, options, answer_index, explanation, subject, topic,
choice_type, source) and aug (0 = original row, j = j-th shuffled copy).
"""

from __future__ import annotations

import json
import shutil
import time
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional, Sequence

from medqa.config import Config, to_dict
from medqa.console import err
from medqa.data import steps
from medqa.data.schema import Rejection

STEP1_COLUMNS = {  # name -> pyarrow type name; rejected rows leave record fields null
    "ordinal": "int64", "line_no": "int64", "reason": "string", "detail": "string", "raw": "string",
    "id": "string", "question": "string", "options": "list<string>", "explanation": "string",
    "subject": "string", "topic": "string", "choice_type": "string", "source": "string",
    "answer_raw": "int64", "base_applies": "bool", "fixed": "int64", "qkey": "string",
    "exact": "int64", "bands": "list<int64>", "shingles": "binary",
}
PLAN_COLUMNS = ["ordinal", "line_no", "reason", "detail", "raw", "answer_raw", "base_applies", "fixed",
                "qkey", "exact", "bands", "shingles", "subject"]
OUTPUT_COLUMNS = {
    "input_ids": "list<int64>", "labels": "list<int64>", "length": "int64", "id": "string",
    "question": "string", "options": "list<string>", "answer_index": "int64", "explanation": "string",
    "subject": "string", "topic": "string", "choice_type": "string", "source": "string",
    "aug": "int64", "split": "string",
}
SPLITS = ("train", "validation")


def _schema(columns: dict):
    import pyarrow as pa

    types = {"int64": pa.int64(), "string": pa.string(), "bool": pa.bool_(), "binary": pa.binary(),
             "list<string>": pa.list_(pa.string()), "list<int64>": pa.list_(pa.int64())}
    return pa.schema([(name, types[t]) for name, t in columns.items()])


def _table(rows: list[dict], columns: dict):
    import pyarrow as pa

    return pa.Table.from_pylist(rows, schema=_schema(columns))


@lru_cache(maxsize=2)
def _tokenizer(path: str):
    from medqa.modeling.loading import load_tokenizer

    return load_tokenizer(path)


def tokenizer_path(cfg: Config) -> str:
    from medqa.modeling.loading import resolve_checkpoint

    return resolve_checkpoint(cfg.model.name, cfg.model.cache_dir)


# ------------------------------------------------------------------ shared shell


def _prepare_output(output_dir: str) -> Path:
    out = Path(output_dir)
    for split in SPLITS:  # stale parts from an earlier run must not mix in
        shutil.rmtree(out / split, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    return out


def _write_rejects(out: Path, rejections: Sequence[Rejection]) -> None:
    with (out / "rejects.jsonl").open("w", encoding="utf-8") as fh:
        for rej in rejections:
            fh.write(json.dumps(rej.to_dict(), ensure_ascii=False, default=str) + "\n")


def data_fingerprint(cfg: Config) -> str:
    """What the prepared rows depend on: the data settings (not where they are written), the
    tokenizer's model, the seed, and the size and age of local source files. Training reuses a
    prepared folder only when its fingerprint matches."""
    import hashlib

    settings = {k: v for k, v in to_dict(cfg.data).items() if k != "output_dir"}
    files = {}
    for src in (cfg.data.source, cfg.data.eval_source):
        if src and Path(src).is_file():
            st = Path(src).stat()
            files[src] = [st.st_size, st.st_mtime_ns]
    key = json.dumps({"data": settings, "model": cfg.model.name, "seed": cfg.seed, "files": files}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def prepared_fingerprint(data_dir: Path) -> Optional[str]:
    """The fingerprint in a prepared folder's summary.json (None for a folder made by hand)."""
    try:
        return json.loads((data_dir / "summary.json").read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def _summary(cfg: Config, engine: str, n_in: int, plan: steps.Plan, seconds: float, out: Path,
             n_eval: int) -> dict:
    reasons: dict[str, int] = {}
    for rej in plan.rejections:
        reasons[rej.reason] = reasons.get(rej.reason, 0) + 1
    s = plan.stats
    after = s["answer_positions_after"]
    total_after = sum(after.values()) or 1
    summary = {
        "rows_in": n_in, "rows_valid": n_in - len(plan.rejections), "rejected": len(plan.rejections),
        "rejected_by_reason": dict(sorted(reasons.items())),
        "duplicates": s["duplicates_exact"] + s["duplicates_near"],
        "duplicates_exact": s["duplicates_exact"], "duplicates_near": s["duplicates_near"],
        "contaminated": s["contaminated"], "eval_questions": n_eval,
        "rows_kept": s["kept"], "rows_out": s["train_rows"] + s["validation_rows"],
        "train_rows": s["train_rows"], "validation_rows": s["validation_rows"],
        "augment_factor": cfg.data.augment_factor,
        "answer_positions_before": s["answer_positions_before"],
        "answer_positions_after": after,
        "answer_share_after": {k: round(v / total_after, 4) for k, v in after.items()},
        "per_subject": s["per_subject"], "cop_base": s["cop_base"],
        "source": cfg.data.source, "eval_source": cfg.data.eval_source, "model": cfg.model.name,
        "engine": engine, "seconds": round(seconds, 3), "rows_per_second": round(n_in / max(seconds, 1e-9), 1),
        "output_dir": str(out), "fingerprint": data_fingerprint(cfg),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


# ------------------------------------------------------------------ plain


def preprocess_in_process(cfg: Config, progress: bool = True) -> dict:
    """The pipeline's steps in a single process (benchmark baseline; same output rows)."""
    import pyarrow.parquet as pq
    from rich.progress import track

    start = time.perf_counter()
    d = cfg.data
    scfg = steps.step_config(d, cfg.seed, d.source)
    items, pre_rejected = steps.raw_items(d.source)
    eval_keys = steps.eval_question_keys(d.eval_source)
    rows: list[dict] = []
    for chunk in track(list(_chunks(items, 1024)), description="validate", console=err, disable=not progress):
        rows += steps.validate_batch(chunk, scfg)
    plan = _plan(rows, pre_rejected, eval_keys, cfg)
    tokenizer = _tokenizer(tokenizer_path(cfg))
    kept = [r for r in rows if r["ordinal"] in plan.split]
    out_rows: list[dict] = []
    for chunk in track(list(_chunks(kept, 512)), description="tokenise", console=err, disable=not progress):
        out_rows += steps.build_batch(chunk, plan.split, plan.answer, plan.targets, tokenizer, scfg)
    out = _prepare_output(d.output_dir)
    for split in SPLITS:
        (out / split).mkdir()
        table = _table([r for r in out_rows if r["split"] == split], OUTPUT_COLUMNS).drop_columns(["split"])
        pq.write_table(table, out / split / "part-00000.parquet")
    _write_rejects(out, plan.rejections)
    return _summary(cfg, "plain", len(items) + len(pre_rejected), plan, time.perf_counter() - start, out,
                    len(eval_keys))


def _plan(rows: list[dict], pre_rejected: list[Rejection], eval_keys: set, cfg: Config) -> steps.Plan:
    d = cfg.data
    plan = steps.make_plan(rows, eval_keys, d.near_duplicate_threshold, d.val_fraction, d.augment_factor,
                           cfg.seed, d.source, d.strict, d.cop_base)
    if pre_rejected and d.strict:
        rej = pre_rejected[0]
        raise ValueError(f"{d.source} row {rej.line_no}: rejected ({rej.reason}) {rej.detail}".rstrip())
    plan.rejections = sorted(pre_rejected + plan.rejections, key=lambda j: j.line_no)
    return plan


# ------------------------------------------------------------------ Ray Data


def _validate_udf(batch, cfg: steps.StepConfig):
    items = zip(batch.column("ordinal").to_pylist(), batch.column("line_no").to_pylist(),
                batch.column("raw").to_pylist())
    return _table(steps.validate_batch(list(items), cfg), STEP1_COLUMNS)


_PLAN_CACHE: dict = {}


def _build_udf(batch, plan_ref, tok_path: str, cfg: steps.StepConfig):
    import ray

    key = plan_ref.hex()
    if key not in _PLAN_CACHE:  # one fetch per worker process, not per batch
        _PLAN_CACHE.clear()
        _PLAN_CACHE[key] = ray.get(plan_ref)
    split, answer, targets = _PLAN_CACHE[key]
    rows = steps.build_batch(batch.to_pylist(), split, answer, targets, _tokenizer(tok_path), cfg)
    return _table(rows, OUTPUT_COLUMNS)


def _input_dataset(items: list[tuple[int, int, str]], parallelism: int):
    import pyarrow as pa
    import ray

    table = pa.table({"ordinal": [i[0] for i in items], "line_no": [i[1] for i in items],
                      "raw": [i[2] for i in items]})
    n_blocks = max(1, min(parallelism, len(items) // 500 or 1))
    step = -(-len(items) // n_blocks) if items else 1
    return ray.data.from_arrow([table.slice(i, step) for i in range(0, max(len(items), 1), step)])


def _raise_user_error(exc: BaseException) -> None:
    """Strict-mode rejections surface from a worker wrapped by Ray; unwrap to one ValueError."""
    import re

    found = re.findall(r"^ValueError: (.* rejected \(\w+\).*)$", str(exc), re.M)
    if found:
        raise ValueError(found[-1].strip()) from None
    raise exc


def preprocess_on_ray(cfg: Config, parallelism: Optional[int] = None) -> dict:
    """Run preprocessing on Ray Data (starting a local Ray if none is running); returns the summary."""
    from medqa import runtime

    with runtime.session(worker_logs=False):
        return _run_ray(cfg, parallelism)


def _run_ray(cfg: Config, parallelism: Optional[int]) -> dict:
    import ray

    start = time.perf_counter()
    d = cfg.data
    parallelism = parallelism or max(2, int(ray.cluster_resources().get("CPU", 2)) * 2)
    scfg = steps.step_config(d, cfg.seed, d.source)
    items, pre_rejected = steps.raw_items(d.source)
    eval_keys = steps.eval_question_keys(d.eval_source)
    tok_path = tokenizer_path(cfg)
    try:
        checked = _input_dataset(items, parallelism).map_batches(
            _validate_udf, fn_kwargs={"cfg": scfg}, batch_format="pyarrow", batch_size=1024).materialize()
        rows = [] if not items else checked.select_columns(PLAN_COLUMNS).to_arrow_refs()
        rows = [r for ref in rows for r in ray.get(ref).to_pylist()]
    except Exception as exc:  # noqa: BLE001 - re-raised, unwrapped when it is a strict rejection
        _raise_user_error(exc)
    plan = _plan(rows, pre_rejected, eval_keys, cfg)
    out = _prepare_output(d.output_dir)
    if plan.split:
        _build_and_write(checked, plan, tok_path, scfg, out)
    else:  # nothing survived: empty splits with the right schema, not a Ray error
        _write_empty_splits(out)
    _write_rejects(out, plan.rejections)
    return _summary(cfg, "ray", len(items) + len(pre_rejected), plan, time.perf_counter() - start, out,
                    len(eval_keys))


def _write_empty_splits(out: Path) -> None:
    """Give every split without rows one empty parquet file, so readers find the schema."""
    import pyarrow.parquet as pq

    for split in SPLITS:
        (out / split).mkdir(exist_ok=True)
        if not any((out / split).glob("*.parquet")):
            pq.write_table(_table([], OUTPUT_COLUMNS).drop_columns(["split"]), out / split / "part-00000.parquet")


def _build_and_write(checked, plan: steps.Plan, tok_path: str, scfg: steps.StepConfig, out: Path) -> None:
    import ray
    from ray.data.expressions import col

    plan_ref = ray.put((plan.split, plan.answer, plan.targets))
    built = checked.drop_columns(["raw", "qkey", "exact", "bands", "shingles"]).map_batches(
        _build_udf, fn_kwargs={"plan_ref": plan_ref, "tok_path": tok_path, "cfg": scfg},
        batch_format="pyarrow", batch_size=512).materialize()
    for split in SPLITS:
        part = built.filter(expr=col("split") == split).drop_columns(["split"])
        part.write_parquet(str(out / split), min_rows_per_file=100_000)
    _write_empty_splits(out)
