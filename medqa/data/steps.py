"""The preprocessing steps as pure functions over batches of plain rows.

Both implementations run exactly these functions, so they give the same rows:
- `pipeline.preprocess_on_ray` (Ray Data): `validate_batch` and `build_batch` run in
  parallel through `map_batches`; `make_plan` runs once on the driver.
- `pipeline.preprocess_in_process` (single process, the benchmark baseline).

Flow:
1. `validate_batch` (row-parallel): parse, validate, normalise, and compute the
   keys the global step needs (question key, exact key, MinHash bands, shingles).
2. `make_plan` (global view, cheap, O(rows)): cop base, answer range, exact and
   near-duplicate removal (keep first), contamination, stratified split, and
   the answer position of every augmented copy.
3. `build_batch` (row-parallel): augment, format the prompt, tokenise with
   label masks.
"""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from medqa.data import augment
from medqa.data.normalize import NearDupIndex, band_keys, n_bands, normalise_record, question_key, row_keys, shingles
from medqa.data.record import MCQRecord
from medqa.data.schema import (
    Limits,
    Rejection,
    RowError,
    answer_index,
    check_texts,
    detect_row,
    is_medqa_row,
    option_key,
)
from medqa.data.tokenize import build_examples

RECORD_FIELDS = ("id", "question", "options", "answer_index", "explanation", "subject", "topic",
                 "choice_type", "source")
UNSHUFFLABLE = -1


@dataclass
class StepConfig:
    """What the row-parallel steps need (picklable, small)."""

    source: str = ""
    limits: Limits = field(default_factory=Limits)
    bands: int = 8
    strict: bool = False
    seed: int = 42
    loss_on: str = "answer"
    max_length: int = 512


# ------------------------------------------------------------------ step 1


def _answer_value(parsed, row: dict) -> tuple[int, bool]:
    """(answer value, whether the cop base still applies). MedQA is fully checked here;
    MedMCQA's range check waits for the file-wide cop base."""
    if is_medqa_row(row):
        index = answer_index(parsed.answer, 0)
        text = parsed.fields.get("answer_text")
        if text is not None and option_key(str(text)) != option_key(str(parsed.options[index])):
            raise RowError("answer_mismatch", f"answer {str(text)[:60]!r} vs option {'ABCD'[index]}")
        return index, False
    try:
        return answer_index(parsed.answer, 0), True
    except RowError as err:
        if err.reason != "answer_out_of_range":
            raise
        return answer_index_unchecked(parsed.answer), True


def answer_index_unchecked(value: Any) -> int:
    return int(float(value)) if isinstance(value, (str, float)) else int(value)


def _fixed_mask(options: Sequence[str]) -> int:
    fixed = augment.fixed_slots(options)
    return UNSHUFFLABLE if fixed is None else sum(1 << i for i in fixed)


def validate_one(ordinal: int, line_no: int, raw: str, cfg: StepConfig) -> dict:
    """One raw JSON text → a step-1 row (`reason` empty when valid)."""
    out = {"ordinal": ordinal, "line_no": line_no, "reason": "", "detail": "", "raw": ""}
    try:
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise RowError("unparseable", f"invalid JSON: {err.msg}") from None
        parsed = detect_row(row)
        question, options = check_texts(parsed.question, parsed.options, cfg.limits)
        value, base_applies = _answer_value(parsed, row)
    except RowError as err:
        if cfg.strict:
            raise ValueError(f"{cfg.source} row {line_no}: rejected ({err.reason}) {err.detail}".rstrip()) from None
        out.update(reason=err.reason, detail=err.detail, raw=raw)
        return out
    fields = {k: v for k, v in parsed.fields.items() if k != "answer_text"}
    rec = normalise_record(MCQRecord(question, options, None, source=cfg.source, **fields))
    qkey, exact, text = row_keys(rec.question, rec.options)
    sh = shingles(text)
    out.update({k: getattr(rec, k) for k in RECORD_FIELDS if k != "answer_index"})
    # Only a value outside 0-3 can be rejected later (by the file's cop base): keep its raw text.
    out.update(raw=raw if not 0 <= value <= 3 else "")
    out.update(answer_raw=value, base_applies=base_applies, fixed=_fixed_mask(rec.options),
               qkey=qkey, exact=exact,
               bands=band_keys(sh, cfg.bands), shingles=sh.tobytes())  # bytes: one object per row, not ~40
    return out


def validate_batch(items: Sequence[tuple[int, int, str]], cfg: StepConfig) -> list[dict]:
    return [validate_one(o, n, raw, cfg) for o, n, raw in items]


# ------------------------------------------------------------------ step 2


@dataclass
class Plan:
    """Global decisions keyed by row ordinal; a row absent from `split` was dropped."""

    split: dict[int, str]
    answer: dict[int, int]
    targets: dict[int, list[int]]
    rejections: list[Rejection]
    stats: dict


def detect_base(values: Sequence[int]) -> int:
    seen = set(values)
    return 1 if 4 in seen and 0 not in seen else 0


def stratified_split(keys: Sequence[tuple[int, str]], val_fraction: float, seed: int) -> dict[int, str]:
    """Per subject: a seeded shuffle, the first round(n * fraction) rows go to validation."""
    by_subject: dict[str, list[int]] = defaultdict(list)
    for ordinal, subject in keys:
        by_subject[subject].append(ordinal)
    split = {}
    for subject in sorted(by_subject):
        ids = sorted(by_subject[subject])
        random.Random(f"{seed}:{subject}").shuffle(ids)
        n_val = int(round(len(ids) * val_fraction))
        for i, ordinal in enumerate(ids):
            split[ordinal] = "validation" if i < n_val else "train"
    return split


def _allowed(fixed: int, answer: int) -> list[int]:
    if fixed == UNSHUFFLABLE:
        return []
    if fixed >> answer & 1:
        return [answer]
    free = [i for i in range(4) if not fixed >> i & 1]
    return free if len(free) > 1 else []


def make_plan(rows: Sequence[dict], eval_keys: set[str], threshold: float, val_fraction: float,
              factor: int, seed: int, source: str = "", strict: bool = False,
              cop_base: Optional[int] = None) -> Plan:
    """`rows`: step-1 rows (any order) with at least ordinal, reason, answer_raw,
    base_applies, fixed, qkey, exact, bands, shingles, subject."""
    rows = sorted(rows, key=lambda r: r["ordinal"])
    valid = [r for r in rows if not r["reason"]]
    base = cop_base if cop_base is not None else detect_base([r["answer_raw"] for r in valid if r["base_applies"]])
    rejections = [Rejection(r["reason"], r["detail"], r["line_no"], r["raw"], source) for r in rows if r["reason"]]
    stats = Counter()
    exact_seen: set[int] = set()
    near = NearDupIndex(threshold)
    answers: dict[int, int] = {}
    keep: list[dict] = []
    for r in valid:
        index = r["answer_raw"] - (base if r["base_applies"] else 0)
        if not 0 <= index < 4:
            rej = Rejection("answer_out_of_range", f"cop {r['answer_raw']} with base {base} (options A-D)",
                            r["line_no"], r["raw"] or None, source)
            if strict:
                raise ValueError(f"{source} row {r['line_no']}: rejected (answer_out_of_range) {rej.detail}")
            rejections.append(rej)
            continue
        if r["exact"] in exact_seen:
            stats["duplicates_exact"] += 1
            continue
        exact_seen.add(r["exact"])
        if near.add(r["ordinal"], np.frombuffer(r["shingles"], dtype=np.int64), r["bands"]) is not None:
            stats["duplicates_near"] += 1
            continue
        if r["qkey"] in eval_keys:
            stats["contaminated"] += 1
            continue
        answers[r["ordinal"]] = index
        keep.append(r)
    split = stratified_split([(r["ordinal"], r["subject"]) for r in keep], val_fraction, seed)
    train = [r for r in keep if split[r["ordinal"]] == "train"]
    plans = augment.plan_targets([(answers[r["ordinal"]], _allowed(r["fixed"], answers[r["ordinal"]]))
                                  for r in train], factor, seed)
    targets = {r["ordinal"]: p for r, p in zip(train, plans)}
    rejections.sort(key=lambda j: j.line_no)
    return Plan(split, answers, targets, rejections, _plan_stats(stats, base, keep, split, answers, targets))


def _plan_stats(stats: Counter, base: int, keep: list[dict], split: dict, answers: dict, targets: dict) -> dict:
    before = [answers[r["ordinal"]] for r in keep if split[r["ordinal"]] == "train"]
    after = [t for p in targets.values() for t in p]
    per_subject: dict[str, dict[str, int]] = defaultdict(lambda: {"train": 0, "validation": 0, "train_augmented": 0})
    for r in keep:
        s = split[r["ordinal"]]
        per_subject[r["subject"]][s] += 1
        if s == "train":
            per_subject[r["subject"]]["train_augmented"] += len(targets[r["ordinal"]])
    return {"cop_base": base, "duplicates_exact": stats["duplicates_exact"],
            "duplicates_near": stats["duplicates_near"], "contaminated": stats["contaminated"],
            "kept": len(keep), "train_rows": len(after), "validation_rows": len(keep) - len(before),
            "answer_positions_before": augment.position_counts(before),
            "answer_positions_after": augment.position_counts(after),
            "per_subject": {k: per_subject[k] for k in sorted(per_subject)}}


# ------------------------------------------------------------------ step 3


def build_batch(rows: Sequence[dict], plan_split: dict, plan_answer: dict, plan_targets: dict,
                tokenizer, cfg: StepConfig) -> list[dict]:
    """Step-1 rows of kept records → output rows (augmented, tokenised, with their split)."""
    records, splits, augs = [], [], []
    for r in rows:
        split = plan_split.get(r["ordinal"])
        if split is None:
            continue
        rec = MCQRecord(**{k: r[k] for k in RECORD_FIELDS if k != "answer_index"},
                        answer_index=plan_answer[r["ordinal"]])
        rec.options = list(rec.options)
        copies = augment.expand(rec, plan_targets.get(r["ordinal"], []), cfg.seed)
        records += copies
        splits += [split] * len(copies)
        augs += range(len(copies))
    examples = build_examples(tokenizer, records, cfg.loss_on, cfg.max_length)
    return [{"input_ids": ex["input_ids"], "labels": ex["labels"], "length": ex["length"],
             **{k: getattr(rec, k) for k in RECORD_FIELDS}, "aug": aug, "split": split}
            for rec, ex, aug, split in zip(records, examples, augs, splits)]


def row_to_record(row: dict) -> MCQRecord:
    """An output (parquet) row back to a record, e.g. for validation scoring."""
    return MCQRecord(**{k: (list(row[k]) if k == "options" else row[k]) for k in RECORD_FIELDS})


def step_config(data_cfg: Any, seed: int, source: str) -> StepConfig:
    return StepConfig(source=source, limits=Limits.from_config(data_cfg),
                      bands=n_bands(data_cfg.near_duplicate_threshold), strict=data_cfg.strict,
                      seed=seed, loss_on=data_cfg.loss_on, max_length=data_cfg.max_length)


def raw_items(src: str) -> tuple[list[tuple[int, int, str]], list[Rejection]]:
    """(ordinal, line_no, raw JSON text) for every row of `src`, plus rows that could
    not even be read as objects (non-JSONL formats; JSONL lines are parsed in step 1)."""
    from medqa.data.sources import SAMPLE, iter_raw, sample_path

    path = str(sample_path()) if src == SAMPLE else src
    items: list[tuple[int, int, str]] = []
    rejected: list[Rejection] = []
    if path.lower().endswith(".jsonl"):
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line_no, line in enumerate(fh, start=1):
                if line.strip():
                    items.append((len(items), line_no, line.rstrip("\n")))
        return items, rejected
    for line_no, row in iter_raw(src):
        if isinstance(row, Rejection):
            rejected.append(row)
        else:
            items.append((len(items), line_no, json.dumps(row, default=str)))
    return items, rejected


def eval_question_keys(src: Optional[str]) -> set[str]:
    """Normalised questions of every eval row that has one (valid or not: a leak is a leak)."""
    if not src:
        return set()
    from medqa.data.sources import iter_raw

    keys = set()
    for _, row in iter_raw(src):
        if isinstance(row, dict) and isinstance(row.get("question"), str) and row["question"].strip():
            keys.add(question_key(row["question"]))
    return keys
