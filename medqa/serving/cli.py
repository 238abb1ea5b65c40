"""`medqa serve`: run the Ray Serve application in the foreground.

    medqa serve                                          # defaults: embedded SmolLM2 on 127.0.0.1:8000
    medqa serve --config serve_configs/local.yaml        # a Ray Serve config file (as `serve run`)
    medqa serve --config jobs/configs/x.yaml             # a medqa config (model + serving sections)
    medqa serve model=tiny-random max_batch_size=16      # build args (medqa.serving.app.BuildArgs)
    medqa serve --adapter v1=runs/train/adapter          # requests choose it: model="<base>:v1"

Ctrl-C or SIGTERM shuts Serve and Ray down cleanly. To leave the app running on
a cluster instead, use `serve deploy serve_configs/gpu.yaml` (see medqa/serving/app.py).
"""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser("serve", help="Run the Ray Serve app (model + safety graph) in the foreground.",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="Ray Serve config YAML (with `applications:`) or medqa config YAML.")
    p.add_argument("--host", help="HTTP host (default: the config's, else 127.0.0.1).")
    p.add_argument("--port", type=int, help="HTTP port (default: the config's, else 8000).")
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray).")
    p.add_argument("--timeout", type=float, default=600.0, help="Seconds to wait for the app to become RUNNING.")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                   help="A LoRA adapter requests may choose with model=\"<base>:NAME\" (repeatable; "
                        "adds to serving.adapters).")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="Build args (BuildArgs fields).")
    p.set_defaults(func=handle)


def handle(args) -> int:
    from medqa.serving.command import ServeSettings, parse_adapters, parse_build_overrides, run_serve

    overrides = parse_build_overrides(args.overrides)
    if args.adapter:
        overrides["adapters"] = {**(overrides.get("adapters") or {}), **parse_adapters(args.adapter)}
    return run_serve(ServeSettings(config=args.config, overrides=overrides,
                                   host=args.host, port=args.port, address=args.address, timeout=args.timeout))
