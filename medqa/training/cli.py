"""`medqa train` and `medqa export` (argparse only at import; the work happens in handlers)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("train", help="QLoRA fine-tuning on Ray Train (one or many workers)")
    p.add_argument("--config", default=None, help="YAML config (e.g. jobs/configs/smoke.yaml)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. training.max_steps=10")
    p.set_defaults(func=train)

    p = sub.add_parser("export", help="merge a LoRA adapter into its de-quantised base and save a standalone model")
    p.add_argument("--adapter", required=True, help="adapter directory (the `checkpoint` printed by `medqa train`)")
    p.add_argument("--output", default=None, help="output directory (default: <adapter>-merged)")
    p.set_defaults(func=export)


def train(args) -> int:
    from medqa.config import load_config
    from medqa.console import emit_json, err
    from medqa.training.driver import fit, init_ray

    cfg = load_config(args.config, args.overrides)
    init_ray(cfg)
    summary = fit(cfg)
    err.print(f"[green]adapter:[/] {summary['checkpoint']}")
    emit_json(summary)
    return 0


def export(args) -> int:
    from medqa.console import emit_json
    from medqa.training.export import export_merged

    emit_json(export_merged(args.adapter, args.output))
    return 0
