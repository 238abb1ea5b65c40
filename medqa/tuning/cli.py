"""`medqa tune` (argparse only at import; Ray and friends load in the handler)."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("tune", help="Ray Tune ASHA search over LoRA rank, alpha, dropout and learning rate")
    p.add_argument("--config", default=None, help="YAML config (e.g. jobs/configs/tune_smoke.yaml)")
    p.add_argument("--resume", default=None, metavar="DIR",
                   help="resume an interrupted search from its directory (Tuner.restore); same as tuning.resume=DIR")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dotted overrides, e.g. tuning.num_samples=8")
    p.set_defaults(func=tune)


def load_tune_config(config: str | None, resume: str | None, overrides: list[str]):
    """A new search reads --config; a resumed one reads the config saved in its directory."""
    from medqa.config import load_config
    from medqa.tuning.search import resume_config

    if resume is None:
        resume = next((o.partition("=")[2] for o in overrides if o.startswith("tuning.resume=")), None) or None
    if resume:
        rest = [o for o in overrides if not o.startswith("tuning.resume=")]
        return resume_config(resume, rest)
    return load_config(config, overrides)


def tune(args) -> int:
    from medqa.console import emit_json, err
    from medqa.training.driver import init_ray
    from medqa.tuning.search import run_search

    cfg = load_tune_config(args.config, args.resume, args.overrides)
    init_ray(cfg)
    summary = run_search(cfg)
    err.print(f"[green]best {summary['metric']}:[/] {summary['best_metric']}  "
              f"[green]config:[/] {summary['best_config']}  "
              f"({summary['stopped_early']}/{summary['trials']} stopped early)")
    emit_json(summary)
    return 0
