"""`medqa prepare-model`: materialise a preset's checkpoint and print its path."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("prepare-model", help="build (once) and print the local checkpoint of a model preset")
    p.add_argument("--preset", default="smollm2-135m", help="preset name, hub id or path (default: smollm2-135m)")
    p.add_argument("--cache-dir", default=None, help="cache directory (default: $MEDQA_CACHE or ~/.cache/medqa)")
    p.set_defaults(func=prepare_model)


def prepare_model(args) -> int:
    from medqa.modeling.loading import resolve_checkpoint

    print(resolve_checkpoint(args.preset, args.cache_dir))
    return 0
