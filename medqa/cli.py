"""The `medqa` command.

Each area of the package registers its own subcommands from a light module
(`medqa/<area>/cli.py`, argparse only at import time) so that `medqa --help`
stays fast; handlers import torch, ray and friends when they run.

May import: config (and, by name, each area's light `cli` module).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from medqa.config import ConfigError

# Areas whose `register(subparsers)` adds commands, in --help order.
COMMAND_MODULES = [
    "medqa.modeling.cli",
    "medqa.data.cli",
    "medqa.training.cli",
    "medqa.tuning.cli",
    "medqa.evaluation.cli",
    "medqa.safety.cli",
    "medqa.serving.cli",
    "medqa.ui.cli",
    "medqa.demo",
]


def _register_config(sub) -> None:
    p = sub.add_parser("config", help="print the resolved config (defaults < FILE < overrides) or the reference")
    p.add_argument("--config", default=None, help="YAML config file")
    p.add_argument("--reference", action="store_true", help="print the Markdown reference of every field")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. lora.r=8")
    p.set_defaults(func=_config_command)


def _config_command(args) -> int:
    import yaml

    from medqa.config import load_config, reference_markdown, to_dict

    if args.reference:
        print(reference_markdown())
    else:
        print(yaml.safe_dump(to_dict(load_config(args.config, args.overrides)), sort_keys=False), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medqa",
        description="Distributed QLoRA training, evaluation and safety-guarded serving for medical QA. "
        "Not for clinical use.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    _register_config(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as err:
        # User errors get one clear line, not a traceback (MEDQA_DEBUG=1 shows it).
        if os.environ.get("MEDQA_DEBUG"):
            raise
        print(f"medqa {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
