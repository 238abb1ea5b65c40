"""QLoRA fine-tuning as a Ray job.

    ray job submit --working-dir . -- python jobs/train.py --config jobs/configs/smoke.yaml

Extra `key=value` arguments override the config (e.g. `training.max_steps=2`).
The prepared data is built first (Ray Data pipeline) when `data.output_dir`
holds none. The last stdout line of the job's logs is the JSON summary
(`checkpoint`: the final adapter directory, `metrics`); see `medqa train`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Prefer the uploaded working directory's package over an installed copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)

    from medqa.config import load_config
    from medqa.console import emit_json
    from medqa.training.driver import fit, init_ray

    cfg = load_config(args.config, args.overrides)
    init_ray(cfg)
    emit_json(fit(cfg))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
