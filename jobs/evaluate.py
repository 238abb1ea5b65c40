"""Multiple-choice evaluation as a Ray job, scored on a Ray Data pool of model replicas.

    ray job submit --working-dir . -- python jobs/evaluate.py --config jobs/configs/evaluate_smoke.yaml

The config's top-level `evaluate:` mapping holds the `medqa evaluate` settings
(`medqa.evaluation.command.EvaluateSettings`: `data`, `model`, `adapter`, `limit`,
`workers`, `gpus_per_worker`, ...). Extra `key=value` arguments override them, each value
read as YAML (e.g. `limit=64 workers=4 gpus_per_worker=1 adapter=null`). With `workers: N`
the questions are scored by N replicas (RAY_ADDRESS under `ray job submit`, else a local
Ray); with 0, in this process. The JSON report is written to `output`; the last stdout line
of the job's logs is the JSON summary (`accuracy`, `n`, `baselines`, `ece`, `report`); see
`medqa evaluate`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

# Prefer the uploaded working directory's package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def load_settings(path: str, overrides: list[str]):
    """`EvaluateSettings` from the config's `evaluate:` mapping and `key=value` overrides;
    ValueError naming the valid keys for an unknown one."""
    import yaml

    from medqa.evaluation.command import EvaluateSettings

    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(loaded, dict) or not isinstance(loaded.get("evaluate", {}), dict):
        raise ValueError(f"{path}: expected a top-level `evaluate:` mapping of settings")
    unexpected = sorted(set(loaded) - {"evaluate"})
    if unexpected:
        raise ValueError(f"{path}: unknown top-level key(s) {unexpected}; the settings go under `evaluate:`")
    values = dict(loaded.get("evaluate") or {})
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"override {item!r} is not key=value")
        values[key.strip()] = yaml.safe_load(text)
    valid = [f.name for f in fields(EvaluateSettings)]
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"unknown evaluate setting(s) {unknown}; valid: {', '.join(valid)}")
    if values.get("data") is None:
        raise ValueError("`data` is required (a .jsonl/.json/.csv/.parquet file, `sample`, or hub id[:split])")
    return EvaluateSettings(**values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    from medqa.console import emit_json
    from medqa.evaluation.command import run_evaluation

    try:
        settings = load_settings(args.config, args.overrides)
    except (OSError, TypeError, ValueError) as error:
        parser.error(str(error))
    summary, _ = run_evaluation(settings)
    emit_json(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
