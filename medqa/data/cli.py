"""`medqa preprocess`: argparse only at import; the pipeline is imported when it runs."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "preprocess",
        help="Validate, de-duplicate, decontaminate, augment and tokenise MCQ data (Ray Data).",
        description="Ray Data pipeline: read → validate → normalise → de-duplicate → contamination "
        "check → option-shuffling augmentation → prompt → tokenise → stratified split → parquet. "
        "The last stdout line is a JSON summary.",
    )
    p.add_argument("--data", metavar="SRC",
                   help="`sample`, a .jsonl/.json/.csv/.parquet file or a hub id (data.source).")
    p.add_argument("--eval-data", metavar="SRC", help="Evaluation set whose questions are removed (data.eval_source).")
    p.add_argument("--output", metavar="DIR", help="Output directory (data.output_dir).")
    p.add_argument("--config", metavar="FILE", help="YAML config file.")
    p.add_argument("--model", metavar="MODEL", help="Tokeniser source: preset, hub id or path (model.name).")
    p.add_argument("--strict", action="store_true", help="Fail on the first malformed row (data.strict).")
    p.add_argument("--engine", choices=["ray", "plain"], default="ray",
                   help="`ray` (Ray Data, default) or `plain` (the same steps in one process).")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help="Dotted config overrides, e.g. data.augment_factor=4.")
    p.set_defaults(func=_run)


def _overrides(args: argparse.Namespace) -> list[str]:
    import json

    flags = {"data.source": args.data, "data.eval_source": args.eval_data, "data.output_dir": args.output,
             "model.name": args.model}
    # JSON-quote values so paths and ids are read as strings by the YAML override parser.
    extra = [f"{k}={json.dumps(v)}" for k, v in flags.items() if v is not None]
    return list(args.overrides) + extra + (["data.strict=true"] if args.strict else [])


def _run(args: argparse.Namespace) -> int:
    from medqa.config import load_config
    from medqa.console import emit_json, err
    from medqa.data.preprocess import preprocess_in_process, preprocess_on_ray

    cfg = load_config(args.config, _overrides(args))
    err.print(f"[bold]preprocess[/] {cfg.data.source} → {cfg.data.output_dir} ({args.engine})")
    summary = preprocess_on_ray(cfg) if args.engine == "ray" else preprocess_in_process(cfg)
    err.print(f"rows in {summary['rows_in']}, rejected {summary['rejected']}, duplicates {summary['duplicates']}, "
              f"contaminated {summary['contaminated']}, rows out {summary['rows_out']}")
    emit_json(summary)
    return 0
