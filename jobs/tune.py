"""Hyperparameter search (Ray Tune + ASHA over LoRA rank, alpha, dropout, learning rate) as a Ray job.

    ray job submit --working-dir . -- python jobs/tune.py --config jobs/configs/tune_smoke.yaml

Extra `key=value` arguments override the config (e.g. `tuning.num_samples=8`);
`--resume DIR` resumes an interrupted search with `Tuner.restore`. Each trial
is a Ray Train run of `jobs/train.py`'s trainer; the search directory is
`<training.storage_path>/<tuning.name>/`. The last stdout line of the job's
logs is the JSON summary (`results`: trials table, `best_config`: YAML for
`medqa train --config`, `best_metric`); see `medqa tune`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Prefer the uploaded working directory's package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None)
    parser.add_argument("--resume", default=None, metavar="DIR")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    if not (args.config or args.resume):
        parser.error("give --config FILE or --resume DIR")

    from medqa.console import emit_json
    from medqa.training.driver import init_ray
    from medqa.tuning.cli import load_tune_config
    from medqa.tuning.search import run_search

    cfg = load_tune_config(args.config, args.resume, args.overrides)
    init_ray(cfg)
    emit_json(run_search(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
