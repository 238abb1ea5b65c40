"""Readers: a source (file, hub id or `sample`) → `MCQRecord`s and `Rejection`s.

SRC forms:
- `sample`: the MedMCQA-schema sample shipped in `medqa/resources/`.
- a local `.jsonl`, `.json` (a list of rows, or `{"data": [...]}`), `.csv` or
  `.parquet` file; a directory saved with `datasets.save_to_disk` also works.
- a hub dataset id, optionally with a split: `openlifescienceai/medmcqa:validation`
  (default split `train`), read through `datasets.load_dataset`.

`cop` base (MedMCQA): the hub copy counts `cop` from 0, the original release
from 1. It is detected per source: if some row has `cop == 4` and none has
`cop == 0`, the source is 1-based; otherwise 0-based. (A 1-based file whose
answers never include D is indistinguishable from a 0-based one; pass
`cop_base=1` explicitly for such a file.)

    records, rejections = read_records("../shared/data/medmcqa_dev_public.jsonl")
"""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from medqa.data.record import MCQRecord
from medqa.data.schema import Limits, Rejection, is_medqa_row, validate_row

SAMPLE = "sample"
FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")

RawItem = tuple[int, Union[dict, Rejection]]


def sample_path() -> Path:
    return Path(str(resources.files("medqa") / "resources" / "sample_medmcqa.jsonl"))


def is_hub_id(src: str) -> bool:
    return not Path(src).exists() and not src.lower().endswith(FILE_SUFFIXES) and "/" in src


def _unparseable(line_no: int, raw: Any, detail: str, source: str) -> Rejection:
    return Rejection("unparseable", detail, line_no, raw, source)


def _iter_jsonl(path: Path) -> Iterator[RawItem]:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue  # blank lines carry no row
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                yield line_no, _unparseable(line_no, line.rstrip("\n"), f"invalid JSON: {err.msg}", str(path))
                continue
            if not isinstance(row, dict):
                yield line_no, _unparseable(line_no, line.rstrip("\n"), f"a JSON {type(row).__name__}, not an object",
                                            str(path))
            else:
                yield line_no, row


def _iter_json(path: Path) -> Iterator[RawItem]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        # A .json file holding JSON lines is common enough to accept.
        if err.msg == "Extra data":
            yield from _iter_jsonl(path)
            return
        raise ValueError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a JSON list of rows or {{\"data\": [...]}}")
    for i, row in enumerate(data, start=1):
        yield i, row if isinstance(row, dict) else _unparseable(
            i, row, f"a JSON {type(row).__name__}, not an object", str(path))


def _csv_value(value: Optional[str]) -> Any:
    # CSV has no null: an empty cell is a missing value.
    return None if value is None or value == "" else value


def _iter_csv(path: Path) -> Iterator[RawItem]:
    with path.open(encoding="utf-8", errors="replace", newline="") as fh:
        reader = csv.DictReader(fh)
        for i, row in enumerate(reader, start=1):
            if None in row:  # more cells than header columns
                yield i, _unparseable(i, row, "more cells than header columns", str(path))
                continue
            row = {k: _csv_value(v) for k, v in row.items()}
            if "options" in row and isinstance(row["options"], str):
                try:
                    row["options"] = json.loads(row["options"])
                except json.JSONDecodeError:
                    pass  # left as text; validation names the problem
            yield i, row


def _iter_parquet(path: Path) -> Iterator[RawItem]:
    import pyarrow.parquet as pq

    for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
        yield i, row


def _iter_dataset(ds) -> Iterator[RawItem]:
    for i, row in enumerate(ds, start=1):
        yield i, dict(row)


def _iter_hub(src: str) -> Iterator[RawItem]:
    import datasets

    name, _, split = src.partition(":")
    yield from _iter_dataset(datasets.load_dataset(name, split=split or "train"))


def iter_raw(src: str) -> Iterator[RawItem]:
    """(line_no, raw row dict or unparseable Rejection) for every row of `src`."""
    if src == SAMPLE:
        src = str(sample_path())
    path = Path(src)
    if path.is_dir():
        import datasets

        saved = (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()
        # save_to_disk output, or a folder of data files (the hub's layout, read offline).
        ds = datasets.load_from_disk(str(path)) if saved else datasets.load_dataset(str(path))
        if isinstance(ds, datasets.DatasetDict):
            ds = ds["train"] if "train" in ds else next(iter(ds.values()))
        yield from _iter_dataset(ds)
        return
    if is_hub_id(src):
        yield from _iter_hub(src)
        return
    if not path.exists():
        raise FileNotFoundError(f"data source {src!r} is neither a file nor a hub id (owner/name[:split])")
    readers = {".jsonl": _iter_jsonl, ".json": _iter_json, ".csv": _iter_csv, ".parquet": _iter_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"{src}: unsupported file type {path.suffix!r} (use {', '.join(FILE_SUFFIXES)})")
    yield from reader(path)


def detect_cop_base(rows: list[Any]) -> int:
    """1 if some MedMCQA row has cop 4 and none has cop 0, else 0 (see module doc)."""
    seen = set()
    for row in rows:
        if isinstance(row, dict) and not is_medqa_row(row):
            cop = row.get("cop")
            if isinstance(cop, str) and cop.strip().lstrip("-").isdigit():
                cop = int(cop)
            if isinstance(cop, (int, float)) and not isinstance(cop, bool):
                seen.add(cop)
    return 1 if 4 in seen and 0 not in seen else 0


def validate_raw(items: list[RawItem], source: str, limits: Optional[Limits] = None,
                 cop_base: Optional[int] = None) -> Iterator[Union[MCQRecord, Rejection]]:
    """Validate already-read raw items; `cop_base` None means detect it over these rows."""
    if cop_base is None:
        cop_base = detect_cop_base([row for _, row in items])
    for line_no, row in items:
        if isinstance(row, Rejection):
            yield row
        else:
            yield validate_row(row, cop_base, limits, source, line_no)


def iter_records(src: str, limits: Optional[Limits] = None,
                 cop_base: Optional[int] = None) -> Iterator[Union[MCQRecord, Rejection]]:
    """Every row of `src` as an `MCQRecord` or a `Rejection`, in source order."""
    yield from validate_raw(list(iter_raw(src)), src, limits, cop_base)


def read_records(src: str, limits: Optional[Limits] = None, cop_base: Optional[int] = None,
                 strict: bool = False) -> tuple[list[MCQRecord], list[Rejection]]:
    """All valid records of `src` and the rejected rows with their reasons.

    `strict` raises `ValueError` on the first rejected row instead.
    """
    records: list[MCQRecord] = []
    rejections: list[Rejection] = []
    for item in iter_records(src, limits, cop_base):
        if isinstance(item, Rejection):
            if strict:
                raise ValueError(f"{src} row {item.line_no}: rejected ({item.reason}) {item.detail}".rstrip())
            rejections.append(item)
        else:
            records.append(item)
    return records, rejections
