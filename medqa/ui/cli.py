"""`medqa ui`: the Gradio front end, a client of the Serve HTTP API.

    medqa serve &                                    # or serve run serve_configs/local.yaml
    medqa ui --api-url http://127.0.0.1:8000         # then open http://127.0.0.1:7860
"""

from __future__ import annotations

import argparse
import os


def register(sub) -> None:
    p = sub.add_parser("ui", help="Gradio UI over the medqa HTTP API.", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--api-url", default=os.environ.get("MEDQA_API_URL", "http://127.0.0.1:8000"),
                   help="Base URL of the medqa Serve app (default: $MEDQA_API_URL or http://127.0.0.1:8000).")
    p.add_argument("--host", default="127.0.0.1", help="Interface the UI binds.")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--api-key-env", default="MEDQA_API_KEY",
                   help="Env var holding the API key sent to the app, if any.")
    p.add_argument("--auth-env", default="MEDQA_UI_AUTH",
                   help="Env var holding the UI's login as user:password (required when --host is beyond loopback).")
    p.add_argument("--allow-unauthenticated", action="store_true", help="Serve the UI beyond loopback without a login.")
    p.set_defaults(func=handle)


def handle(args) -> int:
    from medqa.console import emit_json, err
    from medqa.ui.gradio_app import launch, login

    try:
        auth = login(args.host, os.environ.get(args.auth_env), args.allow_unauthenticated)
    except ValueError as problem:
        err.print(f"[red]medqa ui: {problem}[/]")
        return 2
    err.print(f"medqa UI on http://{args.host}:{args.port} → API {args.api_url} (Ctrl-C to stop)")
    try:
        launch(args.api_url, args.host, args.port, api_key=os.environ.get(args.api_key_env) or None, block=True,
               auth=auth)
    except KeyboardInterrupt:
        pass
    emit_json({"ui": f"http://{args.host}:{args.port}", "api_url": args.api_url, "status": "stopped"})
    return 0
